"""The types that flow from parsing to sectioning: format-neutral, so sections never see a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HEADING = "heading"
TEXT = "text"
LIST_ITEM = "list_item"
TABLE = "table"
CODE = "code"


@dataclass(frozen=True)
class Element:
    """One block of a document in reading order.

    `level` is the heading depth (1 = chapter, 2 = section, ...) for headings and None otherwise;
    `page` is the 1-based page number for paged formats (PDF, PPTX slides) and None otherwise.
    """

    kind: str
    text: str
    level: int | None = None
    page: int | None = None


@dataclass
class ParsedDocument:
    """A document as parsing leaves it: a title (from metadata, first heading or file name) and elements."""

    path: Path
    title: str
    elements: list[Element] = field(default_factory=list)
