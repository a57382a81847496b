"""Reading order of PDF text boxes under three orderings, against the order TeX set the page in.

A LaTeX document's content stream holds each page as TeX shipped it out: head, left column, right
column, foot. So the rank of a text box's first glyph in the stream is a true reading order, and an
ordering is scored by the share of box pairs it puts the other way round, and by the pages it gets
exactly right. The orderings, on the same pdfminer boxes:

* grouping: what ingest.parse reads, pdfminer's hierarchical grouping with deterministic ties;
* position: pdfminer's `boxes_flow=None` (bottom edges top to bottom, then left to right);
* xy-cut: a recursive XY-cut, one cut per level at the widest gap across or down.

    apt-get install texlive-latex-base-doc
    python -m bench.reading_order /usr/share/doc/texlive-doc/latex/l3kernel/l3news*.pdf
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from pdfminer.layout import LAParams, LTChar, LTContainer, LTItem, LTTextBox
from pdfminer.pdfdocument import PDFDocument
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser

from ingest.parse.pdf import _StableAggregator

ORDERINGS = ("grouping", "position", "xy-cut")


class _RankingAggregator(_StableAggregator):
    """Numbers every glyph in stream order before the page is laid out."""

    def end_page(self, page: PDFPage) -> None:
        for rank, char in enumerate(_chars(self.cur_item)):
            char.stream_rank = rank  # type: ignore[attr-defined]
        super().end_page(page)


def _chars(container: LTContainer[LTItem]) -> Iterator[LTChar]:
    for item in container:
        if isinstance(item, LTChar):
            yield item
        elif isinstance(item, LTContainer):
            yield from _chars(item)


def _boxes(container: LTContainer[LTItem]) -> Iterator[LTTextBox]:
    for item in container:
        if isinstance(item, LTTextBox):
            yield item
        elif isinstance(item, LTContainer):
            yield from _boxes(item)


def _rank(box: LTTextBox) -> int | None:
    ranks = [char.stream_rank for line in box for char in line if isinstance(char, LTChar)]
    return min(ranks, default=None)


def _gaps(spans: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """(width, start, end) of each stretch that no span covers, between the first and the last."""
    spans = sorted(spans)
    gaps, reach = [], spans[0][1]
    for start, end in spans[1:]:
        if start > reach:
            gaps.append((start - reach, reach, start))
        reach = max(reach, end)
    return gaps


def xy_cut(boxes: list[LTTextBox]) -> list[LTTextBox]:
    """Cut at the widest gap, down (columns, left first) or across (bands, top first); repeat."""
    if len(boxes) <= 1:
        return boxes
    down = max(_gaps([(box.x0, box.x1) for box in boxes]), default=None)
    across = max(_gaps([(-box.y1, -box.y0) for box in boxes]), default=None)
    if down is None and across is None:
        return sorted(boxes, key=lambda box: (-box.y1, box.x0))
    if across is None or (down is not None and down[0] > across[0]):
        _, left_end, right_start = down
        return xy_cut([b for b in boxes if b.x1 <= left_end]) + xy_cut(
            [b for b in boxes if b.x0 >= right_start]
        )
    _, top_end, bottom_start = across
    return xy_cut([b for b in boxes if -b.y0 <= top_end]) + xy_cut(
        [b for b in boxes if -b.y1 >= bottom_start]
    )


def score(path: Path, ordering: str) -> tuple[int, int, int, int]:
    """(discordant pairs, pairs, pages in exact order, pages) for one file and ordering."""
    flow = 0.5 if ordering == "grouping" else None
    discordant = pairs = exact = pages = 0
    with path.open("rb") as file:
        resources = PDFResourceManager()
        device = _RankingAggregator(resources, laparams=LAParams(all_texts=True, boxes_flow=flow))
        interpreter = PDFPageInterpreter(resources, device)
        for page in PDFPage.create_pages(PDFDocument(PDFParser(file))):
            interpreter.process_page(page)
            boxes = [b for b in _boxes(device.get_result()) if _rank(b) is not None and b.get_text().strip()]
            if ordering == "xy-cut":
                boxes = xy_cut(boxes)
            ranks = [_rank(box) for box in boxes]
            wrong = sum(ranks[i] > later for i in range(len(ranks)) for later in ranks[i + 1 :])
            discordant += wrong
            pairs += len(ranks) * (len(ranks) - 1) // 2
            exact += wrong == 0
            pages += 1
    return discordant, pairs, exact, pages


def main() -> None:
    sys.setrecursionlimit(10_000)  # xy-cut recurses once per cut
    print(f"{'file':<18}" + "".join(f"{name + ': wrong pairs, exact pages':>38}" for name in ORDERINGS))
    for path in map(Path, sys.argv[1:]):
        cells = []
        for ordering in ORDERINGS:
            discordant, pairs, exact, pages = score(path, ordering)
            cells.append(f"{100 * discordant / max(pairs, 1):5.1f} %, {exact:3d}/{pages:<3d}")
        print(f"{path.name:<18}" + "".join(f"{cell:>38}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
