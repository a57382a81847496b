"""What unstructured's PPTX partitioner leaves off a slide that its audience sees.

* A text shape that sticks out past the slide's left or top edge (an offset below zero, often by a
  hair, from dragging) was dropped as "off the slide", though most of it shows. Its text is read,
  as is that of a shape parked wholly beside the slide (which unstructured kept when parked to the
  right or below): the deck's author sees and searches it in the editor.
* Charts and SmartArt diagrams were dropped with their words: a chart's title, axis titles, series
  names (its legend) and category labels, and the text of every node of a diagram (which lives in a
  part of its own). They are read here, one text block per chart or diagram.
* A slide without a title (none set, or its title placeholder left empty) had no heading, so its text
  went under the previous slide's: a section headed "Budget" held another slide's words, and the first
  slide's went under the deck's title. Such a slide is headed "Slide N" (its number in the deck), as
  an editor's slide list names it, so its text is a section of its own. For the same reason a title
  placed below other shapes (shapes are read top to bottom) still opens its slide.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

from lxml import etree
from pptx.presentation import Presentation
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.slide import Slide
from unstructured.documents.elements import Element as UElement
from unstructured.documents.elements import ElementMetadata, Title
from unstructured.partition.pptx import PptxPartitionerOptions, _PptxPartitioner

logger = logging.getLogger(__name__)

_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_DIAGRAM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


class AllShapesPartitioner(_PptxPartitioner):
    """unstructured's partitioner, reading the text of every shape, wherever it lies."""

    def _shape_is_off_slide(self, shape: BaseShape) -> bool:
        return False

    @classmethod
    def read(cls, opts: PptxPartitionerOptions) -> tuple[list[UElement], Presentation]:
        """The deck's elements, and the python-pptx presentation they were read from, loaded once."""
        partitioner = cls(opts)
        return list(partitioner._iter_presentation_elements()), partitioner._presentation


def headed_by_slide(elements: list[UElement]) -> list[UElement]:
    """`elements` (in slide order) with each slide's text under a heading of its own: its title, moved
    ahead of any shape placed above it, else "Slide N". By then the only Titles are slide titles, body
    lines having been made text."""
    headed: list[UElement] = []
    for number, slide in groupby(elements, key=lambda element: element.metadata.page_number or 1):
        own = list(slide)
        title = next((element for element in own if isinstance(element, Title)), None)
        if title is None:
            title = Title(text=f"Slide {number}", metadata=ElementMetadata(page_number=number))
        headed += [title, *(element for element in own if element is not title)]
    return headed


def graphic_texts(path: Path, number: int, slide: Slide) -> list[str]:
    """The words of each chart and diagram on `slide`, top to bottom and left to right, one string each.

    One whose part is missing or broken is left out with a warning naming it: the rest of the deck,
    which unstructured has read, is worth more than failing it for one chart.
    """
    texts = []
    for frame in sorted(_graphic_frames(slide.shapes), key=lambda frame: (frame.top or 0, frame.left or 0)):
        try:
            texts.append(_chart_text(frame) if frame.has_chart else _diagram_text(frame))
        except (KeyError, ValueError, etree.XMLSyntaxError) as exc:
            logger.warning(
                "%s: slide %d: %r is unreadable (%s: %s); its words are left out",
                path,
                number,
                frame.name,
                type(exc).__name__,
                exc,
            )
    return [text for text in texts if text]


def _graphic_frames(shapes: Iterator[BaseShape]) -> Iterator[GraphicFrame]:
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _graphic_frames(shape.shapes)
        elif isinstance(shape, GraphicFrame) and not shape.has_table:
            yield shape


def _chart_text(frame: GraphicFrame) -> str:
    """A chart's title, axis titles, series names and category labels, a line each (labels joined)."""
    chart = frame.chart
    lines = [chart.chart_title.text_frame.text] if chart.has_title else []
    for axis_name in ("category_axis", "value_axis"):
        try:
            axis = getattr(chart, axis_name)
        except ValueError:  # a pie chart has no axes
            continue
        if axis.has_title:
            lines.append(axis.axis_title.text_frame.text)
    lines.extend(series.name for series in chart.series if series.name)
    for plot in chart.plots:
        lines.append(", ".join(str(label) for label in plot.categories if str(label).strip()))
    return "\n".join(line.strip() for line in lines if line and line.strip())


def _diagram_text(frame: GraphicFrame) -> str:
    """The text of a SmartArt diagram's nodes, a line each, from the diagram's data part."""
    ids = frame.element.xpath(".//*[local-name()='relIds']")
    data_id = ids[0].get(f"{{{_RELATIONSHIPS}}}dm") if ids else None
    if not data_id or data_id not in frame.part.rels:
        return ""
    data = etree.fromstring(frame.part.related_part(data_id).blob, etree.XMLParser(resolve_entities=False))
    lines = []
    for point in data.iter(f"{{{_DIAGRAM}}}pt"):
        for paragraph in point.iter(f"{{{_A}}}p"):
            line = "".join(run.text or "" for run in paragraph.iter(f"{{{_A}}}t")).strip()
            if line:
                lines.append(line)
    return "\n".join(lines)
