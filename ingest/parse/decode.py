"""Reading text files: BOMs, UTF-8, then Windows-1252/Latin-1; binary and unreadable bytes refused.

Terminal escape sequences (ECMA-48: colours, cursor moves, window titles, hyperlinks) are taken out of
the text: a saved terminal session or CI log holds them, and they are formatting, not words. Left in,
each counted as a control character, so a coloured log was refused as "not text", or indexed with
"[31m" glued to its words.
"""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

from ragkit.errors import ParseError

logger = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.05
# ECMA-48, ESC-introduced: a control sequence (CSI: ESC [, parameter and intermediate bytes, a final
# byte), a command string (OSC, DCS, PM, APC, SOS: up to BEL or ESC \), or a two-character escape.
_TERMINAL_ESCAPE = re.compile(
    r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|\x1b[\]P^_X][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
# Western text in cp1252 has a few accented letters among ASCII ones; the same bytes of Cyrillic,
# Greek or CJK text come out almost all non-ASCII.
_MAX_NON_ASCII_SHARE = 0.3
_MIN_NON_ASCII_FOR_VERDICT = 20
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# WHATWG: browsers read these labels as windows-1252, and so do real pages.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "ascii", "us-ascii"})


def decode(path: Path, data: bytes, declared: str | None = None) -> str:
    """Bytes of a text file -> str: BOM, else the declared charset, else UTF-8, else Windows-1252.

    Raises ParseError for binary data and for bytes that are not text in the encoding found, naming
    the file and the cause.
    """
    bom = next((encoding for mark, encoding in _BOMS if data.startswith(mark)), None)
    encoding = bom or declared
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"{path}: text is not valid {encoding}: {exc.reason} at byte {exc.start}"
            ) from exc
    else:
        refuse_nul_bytes(path, data)
        text = _decode_undeclared(path, data)
    text = _TERMINAL_ESCAPE.sub("", text) if "\x1b" in text else text
    check_is_text(path, text)
    return text


def refuse_nul_bytes(path: Path, data: bytes) -> None:
    if b"\x00" in data:
        raise ParseError(
            f"{path}: contains NUL bytes: binary data, or text in an encoding without a byte-order mark "
            "such as UTF-16"
        )


def _decode_undeclared(path: Path, data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 (accidental validity is rare), else Windows-1252/Latin-1.

    UTF-8 text with a few stray Windows-1252 bytes (a curly quote pasted in from an old file, two
    files run together) is UTF-8 with those bytes read as Windows-1252: read all as Windows-1252, its
    every accented letter came out garbled ("café" as "cafÃ©"), without a word. It is told apart by
    holding more valid UTF-8 sequences of non-ASCII letters than stray bytes.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    ignored = data.decode("utf-8", errors="ignore")
    stray = data.decode("utf-8", errors="replace").count("\ufffd") - ignored.count("\ufffd")
    if _non_ascii(ignored) > stray:
        logger.warning(
            "%s: UTF-8 text holds bytes that are not UTF-8 (%d); they are read as Windows-1252", path, stray
        )
        return data.decode("utf-8", errors=_AS_WINDOWS_1252)
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    non_ascii = _non_ascii(text)
    visible = len("".join(text.split()))
    if non_ascii >= _MIN_NON_ASCII_FOR_VERDICT and non_ascii > _MAX_NON_ASCII_SHARE * visible:
        raise ParseError(
            f"{path}: text is neither UTF-8 nor Western (Windows-1252/Latin-1); "
            f"{non_ascii} of {visible} characters would be mis-decoded; save it as UTF-8"
        )
    return text


def _non_ascii(text: str) -> int:
    """How many characters of `text` are not ASCII, counted in C: a loop in Python took seconds for a
    file of tens of MiB."""
    return len(text) - len(text.encode("ascii", errors="ignore"))


def _stray_as_windows_1252(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: the bytes UTF-8 could not decode, as Windows-1252 (Latin-1 where it has
    no character), so that decoding goes on after them."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    stray = error.object[error.start : error.end]
    return "".join(_byte_as_windows_1252(byte) for byte in stray), error.end


def _byte_as_windows_1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: Latin-1's C1 controls


_AS_WINDOWS_1252 = "ragkit.stray-bytes-as-windows-1252"
codecs.register_error(_AS_WINDOWS_1252, _stray_as_windows_1252)


def check_is_text(path: Path, text: str) -> None:
    """Reject decoded text that is mostly control characters: a binary file with a text suffix."""
    controls = len(_CONTROL_CHARS.findall(text))
    if controls > _MAX_CONTROL_SHARE * max(len(text), 1):
        raise ParseError(f"{path}: not text: {controls} of {len(text)} characters are control characters")


def html_charset(data: bytes) -> str | None:
    """The charset an HTML file declares in a <meta> tag near its start, if Python knows it.

    A <meta> that names UTF-16 or UTF-32 was read in an ASCII-compatible encoding, so it is wrong
    (a UTF-16 file has a byte-order mark, which wins): browsers ignore it (WHATWG reads it as UTF-8),
    and here the encoding is then found as for an undeclared file. Taken at its word, it turned an
    ASCII page into a line of CJK characters, indexed without a word.
    """
    match = _HTML_CHARSET.search(data[:4096])
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return None if name.startswith(("utf-16", "utf-32")) else name
