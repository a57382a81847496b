"""Receiving an uploaded document: streamed to a generated name under the work directory, nothing else.

The multipart body is parsed as it arrives, so a file never sits whole in memory nor in the system's
temporary folder, and it is written to disk in the event loop's worker threads. A client's file name is
untrusted input: only a sanitised copy is kept, as display metadata, and its suffix picks the parser;
it never becomes (part of) a path.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

FIELD = "file"
MAX_NAME_CHARS = 200
_SUFFIX = re.compile(r"\.[a-z0-9]{1,16}")
_EXTENDED_FILENAME = re.compile(rb"(?:^|;)\s*filename\*\s*=\s*([^;]+)", re.IGNORECASE)


class UploadRejected(Exception):
    """The upload is unacceptable; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A received file: where it was staged, its sanitised display name and its suffix."""

    path: Path
    filename: str
    suffix: str
    size: int


def display_name(raw: str) -> str:
    """The last path component of a client's file name, without control characters or leading dots,
    and at most MAX_NAME_CHARS long: a long name loses the end of its stem, never its suffix."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_NAME_CHARS:
        suffix = Path(name).suffix if _SUFFIX.fullmatch(Path(name).suffix.lower()) else ""
        name = name[: MAX_NAME_CHARS - len(suffix)].rstrip() + suffix
    return name or "upload"


def file_suffix(filename: str, supported: frozenset[str]) -> str:
    """The lower-cased suffix of a sanitised name, if the ingestion pipeline can parse it."""
    suffix = Path(filename).suffix.lower()
    if not _SUFFIX.fullmatch(suffix) or suffix not in supported:
        raise UploadRejected(
            415,
            f"cannot ingest {filename!r}: unsupported file type {suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(sorted(supported))}",
        )
    return suffix


async def receive_upload(request: Request, staging: Path, supported: frozenset[str]) -> Upload:
    """Stream the one file of a multipart/form-data body (field `file`) into `staging`.

    Size limits are enforced by the body-limit middleware as the bytes arrive; a rejected or broken
    upload leaves nothing behind.
    """
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadRejected(
            415, "send the document as multipart/form-data with a field named 'file' (curl -F file=@doc.pdf)"
        )
    receiver = _Receiver(staging, supported)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await receiver.flush()
        parser.finalize()
        await receiver.flush()
        return receiver.result()
    except UploadRejected:
        receiver.discard()
        raise
    except ValueError as exc:  # python-multipart's parse errors
        receiver.discard()
        raise UploadRejected(400, f"malformed multipart body: {exc}") from exc
    except BaseException:
        receiver.discard()
        raise


def _filename(options: dict[bytes, bytes], disposition: bytes) -> str | None:
    """The part's file name: `filename`, else RFC 5987's `filename*=charset'lang'percent-encoded`
    (which python-multipart's header parser leaves out, so it is read from the raw header)."""
    if b"filename" in options:
        return options[b"filename"].decode("utf-8", "replace")
    extended = _EXTENDED_FILENAME.search(disposition)
    if extended is None:
        return None
    charset, _, rest = extended.group(1).decode("ascii", "replace").strip().strip('"').partition("'")
    _, _, encoded = rest.partition("'")
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        return unquote(encoded, errors="replace")


class _Receiver:
    """Parser callbacks: headers are checked as soon as they are complete, data is queued for writing."""

    def __init__(self, staging: Path, supported: frozenset[str]) -> None:
        self._staging = staging
        self._supported = supported
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._in_file = False
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._filename = ""
        self._suffix = ""
        self._size = 0
        self._pending: list[bytes] = []
        self._done = False
        self._ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        field = options.get(b"name", b"").decode("utf-8", "replace")
        if field != FIELD:
            raise UploadRejected(
                400, f"unexpected form field {field!r}: send exactly one file, in a field named {FIELD!r}"
            )
        filename = _filename(options, self._disposition)
        if filename is None:
            raise UploadRejected(
                400,
                f"the {FIELD!r} field has no file name, which gives the document's type: send it as a file "
                "(curl -F file=@doc.pdf)",
            )
        if self._path is not None:
            raise UploadRejected(400, "send one file per request; each upload becomes one ingestion job")
        self._filename = display_name(filename)
        self._suffix = file_suffix(self._filename, self._supported)
        self._path = self._staging / f"{uuid.uuid4().hex}.part"
        self._file = self._path.open("xb")
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(data[start:end])
            self._size += end - start

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self._ended = True

    async def flush(self) -> None:
        if self._pending and self._file is not None:
            pending, self._pending = self._pending, []
            await asyncio.to_thread(self._file.writelines, pending)

    def result(self) -> Upload:
        if self._file is None or self._path is None:
            raise UploadRejected(400, f"no file in the upload: send it in a multipart field named {FIELD!r}")
        self._file.close()
        if not self._ended:
            self.discard()
            raise UploadRejected(
                400, "the multipart body ended before its closing boundary: the upload is incomplete"
            )
        if self._size == 0:
            self.discard()
            raise UploadRejected(400, f"{self._filename!r} is empty")
        self._done = True
        return Upload(self._path, self._filename, self._suffix, self._size)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._path is not None and not self._done:
            self._path.unlink(missing_ok=True)
