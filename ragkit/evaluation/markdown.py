"""A corpus entry as ragkit's sectioner sees a parsed file: its title, then headings and blocks.

Retrieval datasets store documents as plain strings, so the structure the file parser would report has
to be read from the text: markdown ATX headings (`## Methods`) become headings, blank-line-separated
blocks become paragraphs, and a fenced code block stays one block (a `#` inside it is a comment, not a
heading). Text without headings is simply a titled run of paragraphs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.evaluation.dataset import Document

if TYPE_CHECKING:
    from ingest.document import Element, ParsedDocument

# CommonMark: up to 3 spaces of indent, 1-6 '#', a space, the text, an optional closing run of '#'.
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCES = ("```", "~~~")


def parsed_document(document: Document) -> ParsedDocument:
    """The document as `ingest.sections.build_sections` takes it.

    The path is left empty on purpose: the sectioner falls back to the file name for untitled
    documents, and a dataset id such as `qmsum_Passage_12` is no content worth embedding.

    A document with a title and no body (BEIR corpora hold such entries) is its title: the sectioner
    makes no section of a title alone, while the chunk strategy embeds it, so the title becomes the
    only paragraph, under no title of its own: embedded once, the same words as its one chunk.
    """
    from ingest.document import TEXT, Element, ParsedDocument  # ragkit imports ingest only where used

    title = " ".join(document.title.split())
    elements = list(_elements(document.text))
    if not elements and title:
        return ParsedDocument(path=Path(), title="", elements=[Element(TEXT, title)])
    return ParsedDocument(path=Path(), title=title, elements=elements)


def _elements(text: str) -> Iterator[Element]:
    from ingest.document import CODE, HEADING, TEXT, Element

    block: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is not None:
            block.append(line)
            if stripped.startswith(fence):
                yield Element(CODE, "\n".join(block))
                block, fence = [], None
            continue
        heading = _HEADING.match(line)
        ends_paragraph = stripped.startswith(_FENCES) or heading or not stripped
        if ends_paragraph and block:  # a fence, a heading or a blank line ends the paragraph before it
            yield Element(TEXT, "\n".join(block))
            block = []
        if stripped.startswith(_FENCES):
            fence = stripped[:3]
            block.append(line)
        elif heading and heading[2]:
            yield Element(HEADING, heading[2], level=len(heading[1]))
        elif stripped:
            block.append(line)
    if block:
        yield Element(CODE if fence else TEXT, "\n".join(block))
