"""PDF through pdfminer.six, classified with unstructured's own `element_from_text`.

`partition_pdf` cannot be imported without the `unstructured[pdf]` extra (which pulls a CUDA torch),
so this is its `strategy="fast"` path rebuilt from the pieces that do import.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LAParams, LTChar, LTContainer, LTPage, LTTextBox
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFPageInterpreter
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.utils import decode_text
from unstructured.cleaners.core import clean_extra_whitespace
from unstructured.documents.coordinates import PixelSpace
from unstructured.documents.elements import Element as UElement
from unstructured.documents.elements import Text, Title
from unstructured.partition.pdf_image.pdfminer_utils import (
    CustomPDFResourceManager,
    get_text_with_deduplication,
)
from unstructured.partition.text import element_from_text
from unstructured.partition.text_type import is_possible_numbered_list
from unstructured.partition.utils.config import env_config

from ingest.parse.formats import Partition
from ragkit.errors import ParseError

# ---------------------------------------------------------------------------------------- PDF ----

_PDF_TAIL_BYTES = 2048
# Header/footer-zone text that is only a page number ("3", "- 3 -", "Page 3 of 9", "iv").
_PAGE_NUMBER = re.compile(r"^\W*(?:(?i:page)\s*)?(?:\d+|[ivxlc]+)(?:\s*(?:(?i:of)|/)\s*\d+)?\W*$")
_HEADING_SIZE_RATIO = 1.15
_HEADING_MAX_WORDS = 15
_BOLD_SHARE = 0.9


@dataclass(eq=False)
class _PdfBox:
    """One pdfminer text box with what classification needs beyond its text: where and how it is set."""

    element: UElement
    page: int
    size: float
    bold: bool
    chars: int


def read_pdf(path: Path) -> Partition:
    with path.open("rb") as file:
        _check_pdf_complete(path, file)
        try:
            document = PDFDocument(PDFParser(file))
        except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
            raise ParseError(f"{path}: PDF is encrypted and needs a password") from exc
        boxes, pages = _pdf_boxes(document)
        title = _pdf_info_title(document)
    if pages and not boxes:
        raise ParseError(
            f"{path}: no extractable text ({pages} pages without a text layer: a scanned PDF needs OCR, "
            "which ragkit does not run)"
        )
    return Partition(_classify_pdf_boxes(boxes), title)


def _check_pdf_complete(path: Path, file: BinaryIO) -> None:
    """A cut-off PDF still yields its first pages through pdfminer's recovery; refuse it instead."""
    if b"%PDF-" not in file.read(1024):
        raise ParseError(f"{path}: not a PDF (no %PDF- header)")
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - _PDF_TAIL_BYTES))
    if b"%%EOF" not in file.read():
        raise ParseError(f"{path}: PDF is truncated (no %%EOF marker at the end)")
    file.seek(0)


def _pdf_boxes(document: PDFDocument) -> tuple[list[_PdfBox], int]:
    """Every text box on every page, in pdfminer's reading order, and the number of pages."""
    resources = CustomPDFResourceManager()  # unstructured's: resolves CID fonts' embedded CMaps
    device = PDFPageAggregator(resources, laparams=LAParams(all_texts=True))
    interpreter = PDFPageInterpreter(resources, device)
    boxes: list[_PdfBox] = []
    page_count = 0
    for page_count, page in enumerate(PDFPage.create_pages(document), start=1):
        interpreter.process_page(page)
        boxes.extend(_page_boxes(device.get_result(), page_count))
    return boxes, page_count


def _page_boxes(layout: LTPage, page_number: int) -> Iterator[_PdfBox]:
    system = PixelSpace(width=layout.width, height=layout.height)
    for box in _text_boxes(layout):
        text = clean_extra_whitespace(
            get_text_with_deduplication(box, env_config.PDF_CHAR_DUPLICATE_THRESHOLD)
        )
        if not text:
            continue
        x1, y1, x2, y2 = box.x0, layout.height - box.y1, box.x1, layout.height - box.y0
        points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
        # Classified as unstructured's fast path does: bullets, numbered items, prose, title, and by
        # position header (top 7 % of the page) or footer (bottom 7 %).
        element = element_from_text(text, coordinates=points, coordinate_system=system)
        element.metadata.page_number = page_number
        chars = [char for line in box for char in line if isinstance(char, LTChar)]
        sizes = Counter(round(char.size * 2) / 2 for char in chars)
        bold = sum("bold" in char.fontname.lower() for char in chars)
        yield _PdfBox(
            element=element,
            page=page_number,
            size=sizes.most_common(1)[0][0] if sizes else 0.0,
            bold=bool(chars) and bold >= _BOLD_SHARE * len(chars),
            chars=len(chars),
        )


def _text_boxes(container: LTContainer) -> Iterator[LTTextBox]:
    """Text boxes at any depth: with all_texts, text inside figures (form XObjects) has boxes too."""
    for item in container:
        if isinstance(item, LTTextBox):
            yield item
        elif isinstance(item, LTContainer):
            yield from _text_boxes(item)


def _pdf_info_title(document: PDFDocument) -> str | None:
    for info in document.info:
        title = resolve1(info.get("Title"))
        if isinstance(title, bytes):
            return decode_text(title)
        if isinstance(title, str):
            return title
    return None


def _classify_pdf_boxes(boxes: list[_PdfBox]) -> list[UElement]:
    """Drop running headers/footers, then let typography decide headings where the PDF has any.

    A heading in a PDF is set larger or bold; unstructured's text heuristics alone call "How parsing
    works" prose and a lone short body line a heading. So when some short lines stand out by style,
    those are the headings (levels by style, largest first) and unstyled "titles" are text; a PDF
    that sets headings like body text keeps the heuristic titles, all at level 1.
    """
    boxes = _without_running_text(boxes)
    body_size = _body_size(boxes)
    # Where most text is bold, bold marks nothing.
    bold_marks = 2 * sum(box.chars for box in boxes if box.bold) < sum(box.chars for box in boxes)
    styled = {box for box in boxes if _looks_like_heading(box, body_size, bold_marks)}
    styles = sorted({(box.size, box.bold) for box in styled}, reverse=True)
    elements = []
    for box in boxes:
        element = box.element
        if box in styled:
            element = Title(text=element.text, metadata=element.metadata)
            element.metadata.category_depth = styles.index((box.size, box.bold))
        elif isinstance(element, Title) and styled:
            element = Text(text=element.text, metadata=element.metadata)
        elements.append(element)
    return elements


def _without_running_text(boxes: list[_PdfBox]) -> list[_PdfBox]:
    """Drop header/footer-zone text that is a page number or recurs on other pages; keep the rest.

    A footnote or a title near the page edge is content, so position alone does not condemn a box:
    such text is classified again as if it stood in the body.
    """
    zone = {box for box in boxes if box.element.category in ("Header", "Footer")}
    pages_by_text: dict[str, set[int]] = {}
    for box in zone:
        pages_by_text.setdefault(_running_key(box.element.text), set()).add(box.page)
    kept = []
    for box in boxes:
        if box in zone:
            text = box.element.text
            if _PAGE_NUMBER.match(text) or len(pages_by_text[_running_key(text)]) > 1:
                continue
            metadata = box.element.metadata
            box.element = element_from_text(text)
            box.element.metadata = metadata
        kept.append(box)
    return kept


def _running_key(text: str) -> str:
    """Running headers differ only in their numbers ("Chapter 2 — page 14")."""
    return re.sub(r"\d+", "#", text.lower())


def _body_size(boxes: list[_PdfBox]) -> float:
    sizes: Counter[float] = Counter()
    for box in boxes:
        sizes[box.size] += box.chars
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _looks_like_heading(box: _PdfBox, body_size: float, bold_marks: bool) -> bool:
    text = box.element.text
    return (
        (box.size >= _HEADING_SIZE_RATIO * body_size or (bold_marks and box.bold and box.size >= body_size))
        and len(text.split()) <= _HEADING_MAX_WORDS
        and not text.endswith((".", ",", ";", ":"))
        # a bullet point stays a list item, however bold; a numbered line ("2. Method") may be a heading
        and not (box.element.category == "ListItem" and not is_possible_numbered_list(text))
    )
