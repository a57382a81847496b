"""Size caps checked before a parser opens a file, so that a small file cannot expand without bound.

Office files are ZIP packages that python-docx and python-pptx read whole into memory, and lxml then
builds a tree of each XML part, several times its size: a 1.6 MB .docx whose document part inflates to
1.5 GiB drove a job to 3.7 GB before lxml gave up. Every member's declared size is checked first (a
bomb usually declares its size honestly, since zipfile refuses a member that inflates past its declared
size), then the members are inflated in bounded pieces, without keeping them, to check what they really
hold. PDF streams inflate inside pdfminer with no bound, so each Flate stream that pdfminer would
decode is inflated the same way first. Text formats are read whole, so their files are capped too.

Every refusal is a ParseError that names the file, the part, the size found and the limit.
"""

from __future__ import annotations

import io
import mmap
import re
import zipfile
import zlib
from contextlib import suppress
from pathlib import Path

from ragkit.errors import ParseError

MIB = 2**20
MAX_TEXT_FILE_BYTES = 64 * MIB
"""Text, Markdown, HTML, CSV/TSV and email files: bigger files are refused, not read."""
MAX_PACKAGE_MEMBER_BYTES = 128 * MIB
"""One part of a .docx/.pptx, inflated; a 1,000-page report's document part is ~10 MiB."""
MAX_PACKAGE_BYTES = 512 * MIB
"""All parts of a .docx/.pptx together, inflated (images included: the readers load every part)."""
MAX_PDF_STREAM_BYTES = 128 * MIB
"""One PDF content, font or object stream, inflated; images are not decoded, so not counted."""
MAX_PDF_INFLATED_BYTES = 1024 * MIB
"""All of a PDF's decoded streams together."""

_CHUNK = MIB
_PDF_STREAM = re.compile(rb"stream\r?\n")
_PDF_DICT_START = re.compile(rb"obj\b")
_PDF_SKIPPED_STREAM = re.compile(rb"/Subtype\s*/Image\b")
_PDF_FLATE = re.compile(rb"/(?:FlateDecode|Fl)\b")
_PDF_LOOKBACK = 4096


def check_text_file(path: Path) -> None:
    check_text_size(path, path.stat().st_size)


def check_text_size(path: Path, size: int) -> None:
    """Refuse text of `size` bytes past the cap: a file at `path`, or a part of a package named so."""
    if size > MAX_TEXT_FILE_BYTES:
        raise ParseError(
            f"{path}: file is {_mib(size)}, over the limit of {_mib(MAX_TEXT_FILE_BYTES)} for text files"
        )


def check_zip_package(path: Path, data: bytes | None = None) -> None:
    """Refuse an Office package whose parts would inflate past the caps (declared or actual size);
    `data` is the package where it is not the file at `path` (one imported into another)."""
    with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as package:
        members = package.infolist()
        for member in members:
            if member.file_size > MAX_PACKAGE_MEMBER_BYTES:
                raise _member_too_big(path, member.filename, f"declares {_mib(member.file_size)}")
        declared = sum(member.file_size for member in members)
        if declared > MAX_PACKAGE_BYTES:
            raise _package_too_big(path, f"its parts declare {_mib(declared)}")
        total = 0
        for member in members:
            # zipfile stops at the declared size and then checks the CRC, so a member that holds more
            # than it declares fails here as a corrupt package (BadZipFile), which parse() reports.
            with package.open(member) as data:
                while block := data.read(_CHUNK):
                    total += len(block)
        if total > MAX_PACKAGE_BYTES:
            raise _package_too_big(path, f"its parts inflate to {_mib(total)}")


def check_pdf_streams(path: Path) -> None:
    """Refuse a PDF whose Flate streams (the ones pdfminer decodes) would inflate past the caps.

    Streams are found by their `stream` keyword and inflated incrementally from there; a stream that
    is not valid Flate data (encrypted, or another filter) is left to pdfminer, which reports it.
    """
    if path.stat().st_size == 0:
        return  # read_pdf says what is wrong with it
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        _check_streams(path, data)


def _check_streams(path: Path, data: mmap.mmap) -> None:
    total = 0
    for match in _PDF_STREAM.finditer(data):
        head = data[max(0, match.start() - _PDF_LOOKBACK) : match.start()]
        starts = list(_PDF_DICT_START.finditer(head))
        dictionary = head[starts[-1].end() :] if starts else head
        if not _PDF_FLATE.search(dictionary) or _PDF_SKIPPED_STREAM.search(dictionary):
            continue
        inflated = _inflated_size(data, match.end(), MAX_PDF_STREAM_BYTES + 1)
        if inflated > MAX_PDF_STREAM_BYTES:
            raise ParseError(
                f"{path}: a stream at byte {match.end()} inflates to more than {_mib(MAX_PDF_STREAM_BYTES)}, "
                "the limit for one PDF stream (a decompression bomb?)"
            )
        total += inflated
        if total > MAX_PDF_INFLATED_BYTES:
            raise ParseError(
                f"{path}: its streams inflate to more than {_mib(MAX_PDF_INFLATED_BYTES)}, the limit for one PDF"
            )


def _inflated_size(data: mmap.mmap, start: int, limit: int) -> int:
    """Bytes that zlib data starting at `start` inflates to, counted up to `limit` in pieces of at most
    a MiB (never held together); 0 if it is not zlib data."""
    inflater = zlib.decompressobj()
    size, position = 0, start
    with suppress(zlib.error):
        while size < limit and position < len(data) and not inflater.eof:
            pending = data[position : position + _CHUNK]
            position += len(pending)
            while pending and size < limit:
                size += len(inflater.decompress(pending, _CHUNK))
                pending = inflater.unconsumed_tail
    return size


def _member_too_big(path: Path, name: str, found: str) -> ParseError:
    return ParseError(
        f"{path}: part {name!r} {found}, over the limit of {_mib(MAX_PACKAGE_MEMBER_BYTES)} for one part "
        "(a decompression bomb?); refused without inflating it"
    )


def _package_too_big(path: Path, found: str) -> ParseError:
    return ParseError(
        f"{path}: {found}, over the limit of {_mib(MAX_PACKAGE_BYTES)} for a whole package "
        "(a decompression bomb?); refused"
    )


def _mib(size: int) -> str:
    return f"{size / MIB:,.1f} MiB"


_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_XREF_SECTION = re.compile(rb"xref\s+(\d+)\s+(\d+)\s+")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_OBJECT_HEADER = re.compile(rb"\s*\d+\s+\d+\s+obj\b")


def broken_pdf_xref(path: Path) -> str | None:
    """Why the PDF's last cross-reference table cannot be right, if it cannot: said when a PDF yields no
    text, so that the error names the broken index rather than claiming the pages hold no text."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        tail = data[max(0, len(data) - 2048) :]
        found = list(_STARTXREF.finditer(tail))
        if not found:
            return "it has no startxref pointer to its cross-reference table"
        start = int(found[-1].group(1))
        section = _XREF_SECTION.match(data, start) if start < len(data) else None
        if section is None:
            return (
                None
                if start < len(data)
                else f"its startxref points past the end of the file (byte {start:,})"
            )
        first, entries = int(section.group(1)), int(section.group(2))
        position = section.end()
        for number in range(first, first + min(entries, 100_000)):
            entry = _XREF_ENTRY.match(data, position)
            if entry is None:
                return f"its cross-reference table is malformed at object {number}"
            position = entry.end() + 2
            offset = int(entry.group(1))
            if entry.group(3) == b"n" and not (offset < len(data) and _OBJECT_HEADER.match(data, offset)):
                return f"its cross-reference table is broken: object {number} is not at byte {offset:,}"
    return None
