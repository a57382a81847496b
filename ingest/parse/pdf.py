"""PDF through pdfminer.six, classified with unstructured's own `element_from_text`.

`partition_pdf` cannot be imported without the `unstructured[pdf]` extra (which pulls a CUDA torch),
so this is its `strategy="fast"` path rebuilt from the pieces that do import.

Reading order, and why it is pdfminer's own with one change. pdfminer's default layout analysis
(`LAParams.boxes_flow`) merges the closest pair of text boxes into a group, again and again, and
reads each group top-left to bottom-right, so the columns of a page become groups read one after
the other. But it keeps the candidate pairs in a heap of (distance, id(a), id(b)) tuples: pairs at
equal distances, common where TeX sets lines on a fixed grid (line numbers of code listings, tables),
merged in the order of their memory addresses, and the same file came out in different orders from
run to run, even under one hash seed. `_StableGrouping` is that algorithm with ties broken by the
order in which pdfminer made the boxes, so the order is a function of the page alone, and pages
without ties read exactly as before.

The alternatives were measured on LaTeX documents from TeX Live, whose content streams hold each
page in the order TeX set it (head, left column, right column, foot) and so give a true reading
order. Share of text-box pairs out of that order (grouping / `boxes_flow=None` / XY-cut), as
`bench/reading_order.py` prints it:

* two columns, LaTeX3 News 1-12 (24 pages): 0-4.6 % / 4-26 % / 0-4.6 % per issue, and 20 / 3 / 21
  pages in exactly TeX's order; LaTeX News 14, 33-36 (25 pages): 5.5-13.8 % / 20-27 % / 0-5.8 %,
  15 / 2 / 17 pages exact. pdfminer's position sort (bottom edges top to bottom) is deterministic
  but interleaves the columns paragraph by paragraph. pdfminer's lines, the same in all three,
  never join the columns: none of 2,103 lines in seven of these issues holds glyphs from both.
* tables: l3prefixes 10.9 % / 11.9 % / 20.3 %, amssymb 3.9 % / 19.9 % / 1.1 %. pdfminer's boxes
  hold a table column each, so every order reads tables column by column.
* single-column guides (usrguide, clsguide, fntguide): 0.5-1.2 % / 0.2-2.3 % / 0.2-0.7 %.

A recursive XY-cut (cut at the widest gap across or down) did better on most pages, mostly on
tables of contents and on a column whose last section sits beside a table, but worse on the big
table, and it is a new heuristic with known failures (gaps that happen to line up across columns)
that only TeX output here could test. So the grouping stays, only made deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import (
    LAParams,
    LTChar,
    LTComponent,
    LTContainer,
    LTFigure,
    LTLayoutContainer,
    LTPage,
    LTTextBox,
    LTTextBoxVertical,
    LTTextGroup,
    LTTextGroupLRTB,
    LTTextGroupTBRL,
)
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFPageInterpreter
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.psparser import PSLiteral
from pdfminer.utils import Matrix, Plane, Rect, decode_text
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

from ingest.parse import pdf_lines
from ingest.parse.formats import Partition
from ragkit.errors import ParseError

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------- PDF ----

_PDF_TAIL_BYTES = 2048
# Header/footer-zone text that is only a page number ("3", "- 3 -", "Page 3 of 9", "iv").
_PAGE_NUMBER = re.compile(r"^\W*(?:(?i:page)\s*)?(?:\d+|[ivxlc]+)(?:\s*(?:(?i:of)|/)\s*\d+)?\W*$")
_HEADING_SIZE_RATIO = 1.15
_HEADING_MAX_WORDS = 15
_BOLD_SHARE = 0.9
# Pages a header or footer must run across with its number moving with the page to be taken for
# running text: on two, "Chapter 1" and "Chapter 2" may open pages 1 and 2 by chance. A document of
# fewer pages has it on every page, at one height from the page's edge (within this many points).
_MIN_RUNNING_PAGES = 3
_SAME_HEIGHT = 2.0
_NUMBER = re.compile(r"\d+")
_PLACEHOLDER_TITLE = re.compile(
    r"\s*(?:untitled(?:[\s-]*(?:document|\d+))?"
    r"|.*\.(?:pdf|docx?|dotx?|rtf|odt|pptx?|xlsx?|ods|odp|tex|dvi|ps|indd|qxd|pages|key))\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
_UNMAPPED = re.compile(r"\(cid:\d+\)")
# Annotation flags: Hidden (bit 2) and NoView (bit 6).
_HIDDEN_FLAGS = 0b100010
_MAX_FIELD_DEPTH = 32


@dataclass(eq=False)
class _PdfBox:
    """One pdfminer text box with what classification needs beyond its text: where and how it is set."""

    element: UElement
    page: int
    size: float
    bold: bool
    chars: int
    edge: float  # points from the top of the page to the box's top, or from its bottom to the page's


def read_pdf(path: Path) -> Partition:
    with path.open("rb") as file:
        _check_pdf_complete(path, file)
        try:
            document = PDFDocument(PDFParser(file))
        except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
            raise ParseError(f"{path}: PDF is encrypted and needs a password") from exc
        unmapped: Counter[int] = Counter()
        boxes, pages = _pdf_boxes(document, unmapped)
        title = _pdf_info_title(document)
    if unmapped and not boxes:
        raise ParseError(
            f"{path}: no extractable text ({unmapped.total()} characters on {len(unmapped)} pages are set "
            "in fonts that map them to no Unicode text: the text needs OCR, which ragkit does not run)"
        )
    if pages and not boxes:
        raise ParseError(
            f"{path}: no extractable text ({pages} pages without a text layer: a scanned PDF needs OCR, "
            "which ragkit does not run)"
        )
    if unmapped:
        logger.warning(
            "%s: %d characters on pages %s are set in fonts that map them to no Unicode text; "
            "left out (they need OCR)",
            path,
            unmapped.total(),
            ", ".join(map(str, sorted(unmapped))),
        )
    return Partition(_classify_pdf_boxes(boxes, pages), title)


def _check_pdf_complete(path: Path, file: BinaryIO) -> None:
    """A cut-off PDF still yields its first pages through pdfminer's recovery; refuse it instead."""
    if b"%PDF-" not in file.read(1024):
        raise ParseError(f"{path}: not a PDF (no %PDF- header)")
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - _PDF_TAIL_BYTES))
    if b"%%EOF" not in file.read():
        raise ParseError(f"{path}: PDF is truncated (no %%EOF marker at the end)")
    file.seek(0)


def _pdf_boxes(document: PDFDocument, unmapped: Counter[int]) -> tuple[list[_PdfBox], int]:
    """Every text box on every page, in pdfminer's reading order, and the number of pages; `unmapped`
    counts, by page, the characters left out for want of a Unicode mapping. A box's lines are joined
    once the whole document is read, since its other words tell a hyphenated word from a compound."""
    resources = CustomPDFResourceManager()  # unstructured's: resolves CID fonts' embedded CMaps
    device = _StableAggregator(resources, laparams=LAParams(all_texts=True))
    interpreter = PDFPageInterpreter(resources, device)
    read: list[_PdfBox | _SetBox] = []
    page_count = 0
    for page_count, page in enumerate(PDFPage.create_pages(document), start=1):
        interpreter.process_page(page)
        read.extend(_page_boxes(device.get_result(), page_count, unmapped))
        read.extend(_annotation_boxes(page, page_count))
    words = pdf_lines.vocabulary(box.lines for box in read if isinstance(box, _SetBox))
    return [box if isinstance(box, _PdfBox) else box.classified(words) for box in read], page_count


def _annotation_boxes(page: PDFPage, page_number: int) -> Iterator[_PdfBox]:
    """The words a reader sees in the page's annotations, which pdfminer does not draw: what is filled
    in a form's text fields and choice lists, and the text of free-text comments set on the page.
    After the page's own text (their place among its lines is not known), top to bottom.

    Hidden annotations, buttons (a checkbox's value is a state, not words) and signatures are left
    out; so are pop-up notes, which a reader opens, not sees.
    """
    found = []
    for annotation in _resolved_list(page.annots):
        if not isinstance(annotation, dict) or _int(annotation.get("F")) & _HIDDEN_FLAGS:
            continue
        subtype = _name(annotation.get("Subtype"))
        if subtype == "FreeText":
            words = _strings(annotation.get("Contents"))
        elif subtype == "Widget" and _field_value(annotation, "FT") in ("Tx", "Ch"):
            words = _strings(_field_value(annotation, "V"))
        else:
            continue
        text = clean_extra_whitespace(" ".join(words))
        if text:
            rect = [
                value for value in _resolved_list(annotation.get("Rect")) if isinstance(value, int | float)
            ]
            top = max(rect[1::2], default=0.0)
            left = min(rect[0::2], default=0.0)
            found.append((-top, left, len(found), text))
    for _, _, _, text in sorted(found):
        element = Text(text=text)
        element.metadata.page_number = page_number
        yield _PdfBox(element=element, page=page_number, size=0.0, bold=False, chars=0, edge=0.0)


def _field_value(annotation: dict[str, object], key: str) -> object:
    """A form field's entry, from the widget or the field it belongs to (its /Parent, inherited)."""
    node: object = annotation
    for _ in range(_MAX_FIELD_DEPTH):  # a cyclic /Parent chain ends here
        if not isinstance(node, dict):
            return None
        if key in node:
            value = resolve1(node[key])
            return _name(value) if key == "FT" else value
        node = resolve1(node.get("Parent"))
    return None


def _strings(value: object) -> list[str]:
    """A PDF text string, or an array of them (a list's chosen options), as str."""
    value = resolve1(value)
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in (resolve1(item) for item in items):
        if isinstance(item, bytes):
            texts.append(decode_text(item))
        elif isinstance(item, str):
            texts.append(item)
    return texts


def _resolved_list(value: object) -> list[object]:
    value = resolve1(value)
    return [resolve1(item) for item in value] if isinstance(value, list) else []


def _name(value: object) -> str | None:
    value = resolve1(value)
    return value.name if isinstance(value, PSLiteral) else None


def _int(value: object) -> int:
    value = resolve1(value)
    return value if isinstance(value, int) else 0


class _StableGrouping(LTLayoutContainer):
    """pdfminer's hierarchical grouping of text boxes, with ties broken by creation order, not id().

    The algorithm of `LTLayoutContainer.group_textboxes` (pdfminer.six 20260107), except that heap
    entries and the set of merged objects carry a serial number (the box's place in `boxes`, then
    one more for each new group) where pdfminer puts `id(obj)`. pdfminer's `isany` and `Plane`
    use sets only for membership and iterate in insertion order, so nothing else varies.
    """

    def group_textboxes(self, laparams: LAParams, boxes: Sequence[LTTextBox]) -> list[LTTextGroup]:
        plane: Plane[LTComponent] = Plane(self.bbox)
        serials = itertools.count(len(boxes))
        heap = [
            (False, _gap_area(first, second), i, j, first, second)
            for i, first in enumerate(boxes)
            for j, second in enumerate(boxes[i + 1 :], start=i + 1)
        ]
        heapq.heapify(heap)
        plane.extend(boxes)
        numbers: dict[LTComponent, int] = {box: i for i, box in enumerate(boxes)}
        merged: set[int] = set()
        while heap:
            checked, area, i, j, first, second = heapq.heappop(heap)
            if i in merged or j in merged:
                continue
            if not checked and _anything_between(plane, first, second):
                heapq.heappush(heap, (True, area, i, j, first, second))
                continue
            vertical = (LTTextBoxVertical, LTTextGroupTBRL)
            group_type = (
                LTTextGroupTBRL
                if isinstance(first, vertical) or isinstance(second, vertical)
                else LTTextGroupLRTB
            )
            group: LTTextGroup = group_type([first, second])
            plane.remove(first)
            plane.remove(second)
            merged.update((i, j))
            numbers[group] = number = next(serials)
            for other in plane:
                heapq.heappush(heap, (False, _gap_area(group, other), number, numbers[other], group, other))
            plane.add(group)
        # One group now, or a lone box where the page had one box: analyze() takes either.
        return cast(list[LTTextGroup], list(plane))


def _gap_area(first: LTComponent, second: LTComponent) -> float:
    """pdfminer's distance: the area of the pair's bounding box not covered by either (may be < 0)."""
    width = max(first.x1, second.x1) - min(first.x0, second.x0)
    height = max(first.y1, second.y1) - min(first.y0, second.y0)
    return width * height - first.width * first.height - second.width * second.height


def _anything_between(plane: Plane[LTComponent], first: LTComponent, second: LTComponent) -> bool:
    """Whether some other box or group lies within the pair's bounding box."""
    bbox = (
        min(first.x0, second.x0),
        min(first.y0, second.y0),
        max(first.x1, second.x1),
        max(first.y1, second.y1),
    )
    return any(obj is not first and obj is not second for obj in plane.find(bbox))


class _StablePage(_StableGrouping, LTPage):
    pass


class _StableFigure(_StableGrouping, LTFigure):
    pass


class _StableAggregator(PDFPageAggregator):
    """pdfminer's aggregator, laying pages and form XObjects out with `_StableGrouping`."""

    def begin_page(self, page: PDFPage, ctm: Matrix) -> None:
        super().begin_page(page, ctm)
        self.cur_item = _StablePage(self.cur_item.pageid, self.cur_item.bbox, self.cur_item.rotate)

    def begin_figure(self, name: str, bbox: Rect, matrix: Matrix) -> None:
        super().begin_figure(name, bbox, matrix)
        self.cur_item = _StableFigure(name, bbox, self.cur_item.matrix)


@dataclass(frozen=True)
class _SetBox:
    """A page's text box as set, its lines not yet joined."""

    lines: list[str]
    page: int
    points: tuple[tuple[float, float], ...]
    system: PixelSpace
    size: float
    bold: bool
    chars: int
    edge: float

    def classified(self, words: Counter[str]) -> _PdfBox:
        """The box as an element: its lines joined, classified as unstructured's fast path does
        (bullets, numbered items, prose, title, and by position header (top 7 % of the page) or footer
        (bottom 7 %))."""
        text = clean_extra_whitespace(pdf_lines.joined(self.lines, words))
        element = element_from_text(text, coordinates=self.points, coordinate_system=self.system)
        element.metadata.page_number = self.page
        return _PdfBox(element, self.page, self.size, self.bold, self.chars, self.edge)


def _page_boxes(layout: LTPage, page_number: int, unmapped: Counter[int]) -> Iterator[_SetBox]:
    """The page's text boxes. A character whose font maps it to no Unicode text (a subset font
    without a ToUnicode map) is a glyph number that pdfminer writes as "(cid:42)"; indexed, it was
    a run of such numbers. It is left out and counted in `unmapped` instead."""
    system = PixelSpace(width=layout.width, height=layout.height)
    for box in _text_boxes(layout):
        text = get_text_with_deduplication(box, env_config.PDF_CHAR_DUPLICATE_THRESHOLD)
        chars = [char for line in box for char in line if isinstance(char, LTChar)]
        if any(_UNMAPPED.fullmatch(char.get_text()) for char in chars):
            text, count = _UNMAPPED.subn("", text)
            unmapped[page_number] += count
        lines = [pdf_lines.spelled_out(line) for line in text.splitlines() if line.strip()]
        if not lines:
            continue
        x1, y1, x2, y2 = box.x0, layout.height - box.y1, box.x1, layout.height - box.y0
        top = (y1 + y2) / 2 < layout.height / 2
        sizes = Counter(round(char.size * 2) / 2 for char in chars)
        bold = sum("bold" in char.fontname.lower() for char in chars)
        yield _SetBox(
            lines=lines,
            page=page_number,
            points=((x1, y1), (x1, y2), (x2, y2), (x2, y1)),
            system=system,
            size=sizes.most_common(1)[0][0] if sizes else 0.0,
            bold=bool(chars) and bold >= _BOLD_SHARE * len(chars),
            chars=len(chars),
            edge=y1 if top else box.y0,
        )


def _text_boxes(container: LTContainer) -> Iterator[LTTextBox]:
    """Text boxes at any depth: with all_texts, text inside figures (form XObjects) has boxes too."""
    for item in container:
        if isinstance(item, LTTextBox):
            yield item
        elif isinstance(item, LTContainer):
            yield from _text_boxes(item)


def _pdf_info_title(document: PDFDocument) -> str | None:
    """The Info dictionary's /Title, unless it is a placeholder that a converter wrote there: a file
    name ("Microsoft Word - pump-manual.docx", "report.tex") or "Untitled". The title leads every
    section's breadcrumb, so such a one went into every embedding; the first top-level heading then
    titles the document instead."""
    for info in document.info:
        title = resolve1(info.get("Title"))
        if isinstance(title, bytes):
            title = decode_text(title)
        if isinstance(title, str):
            return None if _PLACEHOLDER_TITLE.match(title) else title
    return None


def _classify_pdf_boxes(boxes: list[_PdfBox], pages: int) -> list[UElement]:
    """Drop running headers/footers, then let typography decide headings where the PDF has any.

    A heading in a PDF is set larger or bold; unstructured's text heuristics alone call "How parsing
    works" prose and a lone short body line a heading. So when some short lines stand out by style,
    those are the headings (levels by style, largest first) and unstyled "titles" are text; a PDF
    that sets headings like body text keeps the heuristic titles, all at level 1.
    """
    boxes = _without_running_text(boxes, pages)
    body_size, bold_marks = _body_size(boxes), _bold_marks(boxes)
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


def _without_running_text(boxes: list[_PdfBox], pages: int) -> list[_PdfBox]:
    """Drop header/footer-zone text that is a page number or runs across pages; keep the rest.

    A footnote or a title near the page edge is content, so position alone does not condemn a box:
    such text is classified again as if it stood in the body.
    """
    zone = [box for box in boxes if box.element.category in ("Header", "Footer")]
    running = _running_boxes(zone, pages, _body_size(boxes), _bold_marks(boxes))
    kept = []
    for box in boxes:
        if box in running:
            continue
        if box.element.category in ("Header", "Footer"):
            metadata = box.element.metadata
            box.element = element_from_text(box.element.text)
            box.element.metadata = metadata
        kept.append(box)
    return kept


def _running_boxes(zone: list[_PdfBox], pages: int, body_size: float, bold_marks: bool) -> set[_PdfBox]:
    """The zone's running text: page numbers, the same words in the same type on more than one page,
    and words with a number that moves with the page ("Manual — 3" on page 3, "Manual — 4" on page 4).

    A running header is set alike on every page, so words repeated in another type are not one: a
    title set large at the top of page 1 stays, where the same words run small above pages 2 and 3.
    Headings at the tops of pages differ in their numbers too ("Chapter 1" on page 1, "Chapter 2" on
    page 5), but theirs do not move with the pages; where they do (a chapter a page), a box set as a
    heading is still kept. The set is only asked for membership (boxes hash by id).
    """
    pages_by_style: dict[tuple[str, float, bool], set[int]] = {}
    for box in zone:
        pages_by_style.setdefault((_running_text(box), box.size, box.bold), set()).add(box.page)
    numbered = _numbered_by_page(zone, pages)
    return {
        box
        for box in zone
        if _PAGE_NUMBER.match(box.element.text)
        or len(pages_by_style[(_running_text(box), box.size, box.bold)]) > 1
        or (box in numbered and not _looks_like_heading(box, body_size, bold_marks))
    }


def _numbered_by_page(zone: list[_PdfBox], pages: int) -> set[_PdfBox]:
    """Boxes with a number that moves with the page: in one type, with the same words and other
    numbers, and this number the same offset from the page's ("Manual — 3" on page 3, "Manual — 4" on
    page 4; "Manual — 1" from the fifth page on; "3-1", "3-2" through chapter 3), on at least
    `_MIN_RUNNING_PAGES` pages, or on every page of a shorter document at one height from the edge."""
    alike: dict[tuple[object, ...], list[_PdfBox]] = {}
    for box in zone:
        text = _running_text(box)
        words, numbers = tuple(_NUMBER.split(text)), _NUMBER.findall(text)
        for place, number in enumerate(numbers):
            if len(number) < 10:  # longer is no page number (and int() refuses over 4,300 digits)
                offset = int(number) - box.page
                key = (words, tuple(numbers[:place]), tuple(numbers[place + 1 :]), offset)
                alike.setdefault((*key, box.size, box.bold), []).append(box)
    return {box for boxes in alike.values() if _runs_across(boxes, pages) for box in boxes}


def _runs_across(boxes: list[_PdfBox], pages: int) -> bool:
    """Whether boxes alike but for a page's number run across enough of the document's pages."""
    on = len({box.page for box in boxes})
    if on >= _MIN_RUNNING_PAGES:
        return True
    edges = [box.edge for box in boxes]
    one_edge = len({box.element.category for box in boxes}) == 1  # all headers, or all footers
    return on == pages > 1 and one_edge and max(edges) - min(edges) <= _SAME_HEIGHT


def _running_text(box: _PdfBox) -> str:
    return " ".join(box.element.text.lower().split())


def _body_size(boxes: list[_PdfBox]) -> float:
    sizes: Counter[float] = Counter()
    for box in boxes:
        sizes[box.size] += box.chars
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _bold_marks(boxes: list[_PdfBox]) -> bool:
    """Whether bold sets some text apart: where most text is bold, bold marks nothing."""
    return 2 * sum(box.chars for box in boxes if box.bold) < sum(box.chars for box in boxes)


def _looks_like_heading(box: _PdfBox, body_size: float, bold_marks: bool) -> bool:
    text = box.element.text
    return (
        box.chars > 0  # no glyphs (a form field's value), no typography to tell a heading by
        and (
            box.size >= _HEADING_SIZE_RATIO * body_size or (bold_marks and box.bold and box.size >= body_size)
        )
        and len(text.split()) <= _HEADING_MAX_WORDS
        and not text.endswith((".", ",", ";", ":"))
        # a bullet point stays a list item, however bold; a numbered line ("2. Method") may be a heading
        and not (box.element.category == "ListItem" and not is_possible_numbered_list(text))
    )
