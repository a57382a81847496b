"""Files -> ParsedDocument, through unstructured's partitioners, offline and without telemetry.

Four things about unstructured 0.27 shape this module:

* It pings a telemetry endpoint when imported and prints a sales banner on the first partition, so the
  opt-out variables are set before it is imported (in ``ingest/__init__.py``, which runs first).
* Its text-type heuristics (is this line a heading or prose?) run on spaCy's ``en_core_web_sm``, which
  it downloads from GitHub on first use. Offline the download fails, and PDF partitioning then returns
  no elements at all. ``ingest.parse.nlp`` replaces its model loader: the installed model when
  there is one, otherwise a small built-in pipeline (blank English + sentencizer + a heuristic verb
  tagger), built once per process.
* Its HTML partitioner skips every block of one character as a stray glyph, so a paragraph "5" or
  "B" was lost; ``ingest.parse.formats`` keeps one letter or digit (see
  ``_element_type_keeping_one_character_words``).
* ``partition_pdf`` cannot be imported without the ``unstructured[pdf]`` extra (it imports
  ``pi_heif`` and ``unstructured_inference``, and the extra pulls a CUDA torch), so PDFs are laid out
  with pdfminer.six (``ingest.parse.pdf``) and classified with unstructured's own
  ``element_from_text``, as its ``strategy="fast"`` path does.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lxml.html
from unstructured.documents.elements import Element as UElement

from ingest.document import CODE, HEADING, LIST_ITEM, TABLE, TEXT, Element, ParsedDocument
from ingest.parse.formats import (
    Partition,
    read_delimited,
    read_email,
    read_html,
    read_markdown,
    read_pptx,
    read_text,
)
from ingest.parse.limits import broken_pdf_xref, check_pdf_streams, check_text_file, check_zip_package
from ingest.parse.nlp import nlp_backend  # importing it installs the offline NLP into unstructured
from ingest.parse.pdf import read_pdf
from ingest.parse.word import read_docx
from ragkit.errors import ParseError

__all__ = ["SUPPORTED_SUFFIXES", "UnsupportedFormatError", "nlp_backend", "parse"]


class UnsupportedFormatError(ParseError):
    """The file type is not one ragkit parses; the pipeline reports such files as skipped, not failed."""


@dataclass(frozen=True)
class _Format:
    name: str
    partition: Callable[[Path], Partition]
    check: Callable[[Path], None]  # the size caps of ingest.parse.limits, before the parser opens the file
    paged: bool = False


_TEXT = _Format("text", read_text, check_text_file)
_MARKDOWN = _Format("Markdown", read_markdown, check_text_file)
_HTML = _Format("HTML", read_html, check_text_file)
_FORMATS: dict[str, _Format] = {
    ".txt": _TEXT,
    ".text": _TEXT,
    ".md": _MARKDOWN,
    ".markdown": _MARKDOWN,
    ".html": _HTML,
    ".htm": _HTML,
    ".pdf": _Format("PDF", read_pdf, check_pdf_streams, paged=True),
    ".docx": _Format("DOCX", read_docx, check_zip_package),
    ".pptx": _Format("PPTX", read_pptx, check_zip_package, paged=True),
    ".eml": _Format("email", read_email, check_text_file),
    ".csv": _Format("CSV", read_delimited(None), check_text_file),
    ".tsv": _Format("TSV", read_delimited("\t"), check_text_file),
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMATS)

_KINDS = {"Title": HEADING, "ListItem": LIST_ITEM, "Table": TABLE, "CodeSnippet": CODE}
# Page furniture, not content.
_NOISE = frozenset({"Header", "Footer", "PageNumber", "PageBreak"})


def parse(path: Path) -> ParsedDocument:
    """Parse one file into a title and elements in reading order.

    Raises UnsupportedFormatError for a file type outside SUPPORTED_SUFFIXES and ParseError, naming
    the file and the cause, for a file that cannot be read or holds no text. A module-level function
    of a path only, so a ProcessPoolExecutor can run it.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        fmt.check(path)
        partition = fmt.partition(path)
    except ParseError:
        raise
    except OSError as exc:
        raise ParseError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except zipfile.BadZipFile as exc:
        raise ParseError(f"{path}: corrupt or truncated {fmt.name} file (not a readable ZIP): {exc}") from exc
    except Exception as exc:  # any failure inside a parser is this document's failure, not the job's
        raise ParseError(f"{path}: cannot parse {fmt.name}: {type(exc).__name__}: {exc}") from exc
    elements = [element for raw in partition.elements if (element := _convert(raw, fmt.paged))]
    if not elements:
        broken = broken_pdf_xref(path) if fmt.paged and path.suffix.lower() == ".pdf" else None
        raise ParseError(f"{path}: no extractable text" + (f": {broken}" if broken else ""))
    return ParsedDocument(path=path, title=_title(path, partition.title, elements), elements=elements)


def _convert(raw: UElement, paged: bool) -> Element | None:
    """One unstructured element -> one ragkit Element, or None for page furniture and empty blocks."""
    if raw.category in _NOISE or not raw.text.strip():
        return None
    kind = _KINDS.get(raw.category, TEXT)
    metadata = raw.metadata
    if kind == CODE:
        text = raw.text.strip("\n").rstrip()
    elif kind == TABLE:
        text = _table_rows(metadata.text_as_html) or raw.text.strip()
    else:
        text = raw.text.strip()
    return Element(
        kind=kind,
        text=text,
        level=(metadata.category_depth or 0) + 1 if kind == HEADING else None,
        page=metadata.page_number if paged else None,
    )


def _table_rows(html: str | None) -> str:
    """A table as plain-text rows, cells joined by " | ": unstructured's own text runs all cells together."""
    if not html:
        return ""
    rows = []
    for row in lxml.html.fragment_fromstring(html, create_parent="div").iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _title(path: Path, metadata_title: str | None, elements: list[Element]) -> str:
    """The format's title metadata, else the first top-level heading, else the file name's stem."""
    if metadata_title and metadata_title.strip():
        return " ".join(metadata_title.split())
    headings = [element for element in elements if element.kind == HEADING]
    if headings:
        top = min(heading.level or 1 for heading in headings)
        return next(heading.text for heading in headings if (heading.level or 1) == top)
    return path.stem
