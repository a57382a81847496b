"""Word documents: the body as python-docx reads it once ingest.parse.wordml has moved in the text it
would not see, with each chunk imported in another format read in that format, in its place.

A chunk (`w:altChunk`) is a part that Word converts and shows where the element stands: web editors,
mail merges and document generators write HTML, plain text, a saved web page (MHT) or a whole other
.docx that way. python-docx skips the element, so such a document's body was lost without a word.
Each chunk is read as a file of its format is, and its elements take the place of its marker's
paragraph; in a table cell, where a cell holds text and not sections, its words take the place of the
marker. A chunk that cannot be read (RTF, Word's XML, a broken or oversized part, a .docx nested
past `MAX_CHUNK_DEPTH`) is left out with a warning naming it and why; the rest of the document is
still read, as a broken notes part leaves the body. Messages name a chunk as a path into its package
(`report.docx/word/afchunk.htm`).
"""

from __future__ import annotations

import email
import email.policy
import html
import io
import logging
from pathlib import Path

from unstructured.documents.elements import Element as UElement
from unstructured.documents.elements import Table
from unstructured.partition.docx import partition_docx
from unstructured.partition.text import partition_text

from ingest.parse import wordml
from ingest.parse.decode import decode, html_charset
from ingest.parse.formats import NO_LANGUAGE_DETECTION, Partition, html_text, message_text, ooxml_title
from ingest.parse.limits import check_text_size, check_zip_package

logger = logging.getLogger(__name__)

MAX_CHUNK_DEPTH = 3
"""How deep a .docx imported into a .docx (1), imported into a .docx (2), ... is read."""

_HTML = frozenset({"text/html", "application/xhtml+xml"})
_MHT = frozenset({"message/rfc822", "multipart/related"})
_WORD = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
        "application/vnd.ms-word.document.macroenabled.main+xml",
        "application/vnd.ms-word.template.macroenabledtemplate.main+xml",
    }
)


def read_docx(path: Path) -> Partition:
    return Partition(_elements(path), ooxml_title(path))


def _elements(path: Path, data: bytes | None = None, depth: int = 0) -> list[UElement]:
    """The elements of the package at `path`, or of `data` where it is a chunk named `path`."""
    readable = wordml.readable_docx(path, data)
    package = readable.package or (io.BytesIO(data) if data is not None else None)
    elements = partition_docx(
        filename=str(path) if package is None else None,
        file=package,
        include_page_breaks=False,
        languages=NO_LANGUAGE_DETECTION,
    )
    chunks = {
        chunk.marker: (path / chunk.part, _chunk(path / chunk.part, chunk, depth))
        for chunk in readable.chunks
    }
    return _spliced(elements, chunks)


def _chunk(name: Path, chunk: wordml.AltChunk, depth: int) -> list[UElement]:
    """A chunk's elements, read as a file of its content type is; none, with a warning, where it cannot be."""
    kind = chunk.content_type
    try:
        if kind in _HTML or kind == "text/plain":
            check_text_size(name, len(chunk.data))
        if kind in _HTML:
            return html_text(name, decode(name, chunk.data, html_charset(chunk.data))).elements
        if kind == "text/plain":
            return partition_text(text=decode(name, chunk.data), languages=NO_LANGUAGE_DETECTION)
        if kind in _MHT:
            return message_text(name, email.message_from_bytes(chunk.data, policy=email.policy.default))
        if kind in _WORD:
            if depth + 1 > MAX_CHUNK_DEPTH:
                logger.warning(
                    "%s: a .docx imported %d levels deep, past the limit of %d; left out",
                    name,
                    depth + 1,
                    MAX_CHUNK_DEPTH,
                )
                return []
            check_zip_package(name, chunk.data)
            return _elements(name, chunk.data, depth + 1)
    except Exception as exc:  # a chunk's failure is the chunk's, not its document's
        logger.warning("%s: an imported chunk that cannot be read (%s); left out", name, exc)
        return []
    logger.warning(
        "%s: an imported chunk of type %s, which ragkit does not read; left out", name, kind or "(undeclared)"
    )
    return []


def _spliced(elements: list[UElement], chunks: dict[str, tuple[Path, list[UElement]]]) -> list[UElement]:
    """`elements` with each chunk's elements in place of its marker's paragraph, and its words in place
    of its marker in a table. A marker found nowhere (its paragraph somewhere python-docx does not
    read) is named in a warning."""
    spliced: list[UElement] = []
    for element in elements:
        if (found := chunks.pop(element.text.strip(), None)) is not None:
            spliced += found[1]
            continue
        if isinstance(element, Table):
            for marker in [marker for marker in chunks if marker in element.text]:
                words = " ".join(part.text for part in chunks.pop(marker)[1])
                element.text = element.text.replace(marker, words)
                if element.metadata.text_as_html:
                    element.metadata.text_as_html = element.metadata.text_as_html.replace(
                        marker, html.escape(words)
                    )
        spliced.append(element)
    for name, _ in chunks.values():
        logger.warning("%s: an imported chunk where python-docx reads no text; left out", name)
    return spliced
