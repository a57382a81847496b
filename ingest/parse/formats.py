"""Per-format partitioning: each returns unstructured elements and the format's own title, if any."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from xml.etree import ElementTree

import lxml.html
import markdown
import unstructured.partition.html.parser as html_parser
from lxml import etree
from pptx.presentation import Presentation
from unstructured.documents.elements import Element as UElement
from unstructured.documents.elements import ElementMetadata, NarrativeText, Table, Text, Title
from unstructured.file_utils.model import FileType
from unstructured.partition.html import partition_html
from unstructured.partition.pptx import PptxPartitionerOptions
from unstructured.partition.text import partition_text
from unstructured.partition.utils.constants import PartitionStrategy

from ingest.parse import nesting, slides
from ingest.parse.decode import check_is_text, decode, html_charset, refuse_nul_bytes
from ingest.parse.limits import MAX_TEXT_FILE_BYTES
from ragkit.errors import ParseError

logger = logging.getLogger(__name__)

if not callable(getattr(html_parser, "derive_element_type_from_text", None)):
    raise ImportError(
        "unstructured.partition.html.parser.derive_element_type_from_text is missing: this unstructured "
        "version types HTML blocks differently, and ingest.parse cannot keep one-character words"
    )
_derive_element_type = html_parser.derive_element_type_from_text


def _element_type_keeping_one_character_words(text: str) -> type[Text] | None:
    """unstructured's element type for the text of an HTML block, but Text, not None (skipped), for a
    block of one letter or digit: it skips every one-character block as a stray glyph, which a lone
    "|" or "·" is, but "5" in a table of values or "B" in an answer key is a word. Looked up as a
    module global on each call, so rebinding it covers HTML, Markdown and email bodies at once."""
    return _derive_element_type(text) or (Text if text.isalnum() else None)


html_parser.derive_element_type_from_text = _element_type_keeping_one_character_words

# unstructured detects each document's language (langdetect, a quarter of parse time) only to fill
# metadata ragkit never stores; [""] is its documented "skip" value.
NO_LANGUAGE_DETECTION = [""]

MARKDOWN_EXTENSIONS = ["tables", "fenced_code"]
"""unstructured's partition_md default: GitHub-style tables and fenced code blocks."""


@dataclass
class Partition:
    elements: list[UElement]
    title: str | None = None


def read_text(path: Path) -> Partition:
    return Partition(partition_text(text=decode(path, path.read_bytes()), languages=NO_LANGUAGE_DETECTION))


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t\r]*$", re.MULTILINE)
# A YAML block scalar (`title: >` or `title: |-`), whose value is the indented lines below it.
_BLOCK_SCALAR = re.compile(r"[>|][+-]?\d?")
_INDENTED_LINES = re.compile(r"(?:\r?\n[ \t]+[^\r\n]*)+")
# A line of a YAML mapping: `key:` at the margin, or what a value continues with (an indented line,
# a list item, a comment). Checked by line, not parsed: PyYAML is no runtime dependency of ragkit.
_YAML_KEY = re.compile(r"[A-Za-z_][\w.-]*[ \t]*:(?:[ \t]|$)")
_YAML_CONTINUATION = ("  ", "\t", "- ", "#")


def read_markdown(path: Path) -> Partition:
    """Markdown, with YAML front matter giving the title and kept as the first block, read as text.

    Front matter is split off so that Markdown does not read it (its closing `---` would make the
    line above it a heading), and only where it is a YAML mapping: a document may open with a
    horizontal rule, and the prose up to the next rule is body text. Its lines (author, tags, a
    description) stay in the document as one text block, since nothing else would keep them.

    The rest is converted to HTML as unstructured's partition_md converts it, and read as HTML is, so
    markup nested deeper than the HTML parser reads is flattened rather than dropped. A document nested
    deeper than Python-Markdown itself can recurse is read as plain text: its structure is lost, never
    its text.
    """
    text = decode(path, path.read_bytes())
    title = None
    elements: list[UElement] = []
    if (front_matter := _FRONT_MATTER.match(text)) and _is_yaml_mapping(front_matter.group(1)):
        text = text[front_matter.end() :]
        elements.append(Text(text=front_matter.group(1)))
        if found := _FRONT_MATTER_TITLE.search(front_matter.group(1)):
            title = found.group(1).strip("'\"")
            if _BLOCK_SCALAR.fullmatch(title):  # the title ">" led every breadcrumb
                lines = _INDENTED_LINES.match(front_matter.group(1), found.end())
                title = " ".join(lines.group().split()) if lines else None
    if not text.strip():
        return Partition(elements, title)
    try:
        html = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS)
    except RecursionError:
        logger.warning("%s: Markdown nested too deep to convert; read as plain text", path)
        return Partition([*elements, *partition_text(text=text, languages=NO_LANGUAGE_DETECTION)], title)
    if (html := _readable_html(path, html)) is not None:
        elements += partition_html(text=html, languages=NO_LANGUAGE_DETECTION, metadata_file_type=FileType.MD)
    return Partition(elements, title)


def _is_yaml_mapping(block: str) -> bool:
    """Whether every line of `block` can belong to a YAML mapping, the first being a key."""
    lines = [line for line in block.splitlines() if line.strip()]
    return bool(lines) and all(
        _YAML_KEY.match(line) or (i > 0 and line.startswith(_YAML_CONTINUATION))
        for i, line in enumerate(lines)
    )


_XML_DECLARATION = re.compile(r"\A\s*<\?xml\b[^>]*\?>")
# Blocks unstructured drops with everything in them, read as the <div>s they act as.
_SKIPPED_BLOCKS = ("details", "summary", "figure", "nav", "form", "main", "noscript", "template", "dialog")
# Inline elements it drops, read as the inline element each is shown as.
_SKIPPED_PHRASES = {"label": "span", "del": "s", "svg": "span"}
# Inside an <svg>: its <text>s are labels of a drawing, its <title> the drawing's alternative text
# (as an <img>'s alt is), each read apart from the next.
_SVG_WORDS = ("text", "title")
# Form controls, each drawn as a box of its own: read as a <span> of the words a reader sees in it,
# set apart from the words around it.
_CONTROLS = ("button", "select", "optgroup", "option", "textarea", "input")
# <input> types whose value a reader does not see as words: not drawn, masked, or a state or a setting.
_UNSHOWN_INPUT_VALUES = frozenset(
    {"hidden", "password", "checkbox", "radio", "file", "image", "color", "range"}
)


def read_html(path: Path) -> Partition:
    data = path.read_bytes()
    return html_text(path, decode(path, data, html_charset(data)))


def html_text(path: Path, text: str) -> Partition:
    """HTML already decoded, read as an .html file is; `path` names it in messages."""
    if not text.strip() or (readable := _readable_html(path, text)) is None:
        return Partition([])
    return Partition(partition_html(text=readable, languages=NO_LANGUAGE_DETECTION), _html_title(readable))


def _readable_html(path: Path, text: str) -> str | None:
    """HTML that unstructured's partitioner reads whole: none of it too deep, none of it skipped; None
    for HTML that holds no element at all (only a comment, a doctype or a processing instruction),
    which has no text, and on which unstructured crashes ("'NoneType' object has no attribute 'xpath'").

    An XHTML file's XML declaration goes first: the text is decoded already, and lxml refuses a str
    that declares an encoding, so such a file failed as "cannot parse HTML: ValueError".
    """
    text, root = _within_parser_depth(path, _XML_DECLARATION.sub("", text, count=1))
    return None if root is None else _with_skipped_text_shown(text, root)


def _with_skipped_text_shown(text: str, root: etree._Element) -> str:
    """`text` (parsed as `root`) with what unstructured skips, but a reader of the page sees, renamed to
    elements whose text it reads. Pages without any of it are passed on untouched.

    unstructured drops as likely boilerplate <details>, <summary>, <figure>, <nav> and <form> with all
    in them, and of a page with a <main> it reads only that: a collapsed answer, a figure's listing and
    caption, a page laid out inside one <form> were lost without a word. It drops <noscript>, which is
    what a reader without scripts sees, and ragkit reads pages without running their scripts;
    <template>, whose content scripts (or, for a declarative shadow root, the browser itself) put on
    the page; a <dialog>'s text, shown when it opens as a <details>' text is; <del>, which a browser
    shows struck through (a changelog's old name is still searched for); the <text> of an inline
    <svg> diagram and its <title>, the drawing's alternative text as an <img>'s alt is (and no
    longer the page's title where the <head> has none); and the words of form controls: a <label>,
    a <button>'s text, the <option>s (and <optgroup> labels) of a <select>, a <textarea>'s text,
    and an <input>'s value and placeholder (a button's label, a field's hint), but not the value of
    a hidden, password, checkbox, radio or other input that shows none. All are read as a <div>, a
    <span> or an <s> instead.

    Still left out, as no reader sees it as page text: <script>, <style>, the suggestions of a
    <datalist>, and the fallbacks inside <iframe>, <object>, <video>, <audio> and <canvas>, which a
    browser that shows the element does not show.
    """
    skipped = list(root.iter(*_SKIPPED_BLOCKS, *_SKIPPED_PHRASES, *_CONTROLS))
    skipped += [words for svg in root.iter("svg") for words in svg.iter(*_SVG_WORDS)]
    if not skipped:
        return text
    for element in skipped:
        if element.tag in _SKIPPED_BLOCKS:
            element.tag = "div"
        elif element.tag in _SKIPPED_PHRASES:
            element.tag = _SKIPPED_PHRASES[element.tag]
        elif element.tag in _SVG_WORDS:
            element.tag = "span"
            element.tail = " " + (element.tail or "")
        else:
            _show_control(element)
    return etree.tostring(root, method="html", encoding="unicode")


def _show_control(control: etree._Element) -> None:
    """A form control as a <span> of its visible words, spaced from its neighbours as its box is."""
    if control.tag == "input":
        kind = (control.get("type") or "text").strip().lower()
        shown = [] if kind == "hidden" else [control.get("placeholder")]
        if kind == "image":
            shown = [control.get("alt")]  # what stands in for the image, as for an <img>
        elif kind not in _UNSHOWN_INPUT_VALUES:
            shown.insert(0, control.get("value"))
        control.text = " ".join(words for words in shown if words)
    elif control.tag in ("optgroup", "option") and control.get("label"):
        control.text = f"{control.get('label')} {control.text or ''}"
    elif control.tag == "textarea" and control.get("placeholder"):
        control.text = f"{control.text or ''} {control.get('placeholder')}"
    control.tag = "span"
    control.text = f" {control.text or ''}"
    control.tail = f" {control.tail or ''}"


def _within_parser_depth(path: Path, text: str) -> tuple[str, etree._Element | None]:
    """HTML that libxml2 reads whole, flattened below `nesting.MAX_DEPTH` where it would stop, and
    libxml2's tree of it (None where it holds no element)."""
    root, too_deep = nesting.parse(text)
    if not too_deep:
        return text, root
    logger.warning(
        "%s: HTML nested over %d levels deep; deeper tags are left out, their text kept",
        path,
        nesting.MAX_DEPTH,
    )
    text = nesting.flatten(text)
    root, too_deep = nesting.parse(text)
    if too_deep:
        raise ParseError(f"{path}: HTML nested too deep for the parser (over 256 levels), even flattened")
    return text, root


def _html_title(text: str) -> str | None:
    try:
        return lxml.html.document_fromstring(text).findtext(".//title")
    except (ValueError, etree.ParserError):
        return None


# The delimiters a .csv is sniffed for (Excel writes ";" where "," is the decimal separator).
CSV_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024


def read_delimited(delimiter: str | None) -> Callable[[Path], Partition]:
    """CSV/TSV as one table, every row and cell as the file has them; `delimiter` None is sniffed.

    Read with the standard library's csv module, not unstructured's partition_csv (pandas): that
    failed a whole file on one row longer than the header ("Expected 2 fields in line 3, saw 3"),
    and on a one-column file sniffed a space as the delimiter and padded the short rows with cells
    reading "None", words the file does not hold. Rows keep the cells they have; blank rows go.
    """

    def partition(path: Path) -> Partition:
        text = decode(path, path.read_bytes())
        rows = []
        csv.field_size_limit(max(csv.field_size_limit(), MAX_TEXT_FILE_BYTES))  # a cell as big as a file
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _sniff_delimiter(text)):
            cells = [" ".join(cell.split()) for cell in row]
            if any(cells):
                rows.append(" | ".join(cells))
        return Partition([Table(text="\n".join(rows))] if rows else [])

    return partition


def _sniff_delimiter(text: str) -> str:
    """The delimiter of a .csv among `CSV_DELIMITERS`, from its start; a comma where none stands out."""
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_CHARS], delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_pptx(path: Path) -> Partition:
    """Slides: the title shape gives the headings, body text stays text; the words of charts and
    diagrams, then the speaker notes, end each slide.

    unstructured promotes short body lines to Titles one level below the slide title; on a slide they
    are bullet fragments, not section headings. It would put the notes *before* each slide's title,
    which files them under the previous slide, so they are read here and appended instead. What else
    it leaves off a slide, and how a slide without a title is headed, is in ingest.parse.slides.
    """
    options = PptxPartitionerOptions(
        file=None,
        file_path=str(path),
        include_page_breaks=False,
        include_slide_notes=False,
        infer_table_structure=True,
        strategy=PartitionStrategy.FAST,
    )
    read, presentation = slides.AllShapesPartitioner.read(options)
    elements = [
        Text(text=element.text, metadata=element.metadata)
        if isinstance(element, Title) and element.metadata.category_depth
        else element
        for element in read
    ]
    title = _deck_title(path, elements)
    return Partition(slides.headed_by_slide(_with_slide_extras(path, presentation, elements)), title)


def _deck_title(path: Path, elements: list[UElement]) -> str:
    """dc:title, else the first slide title, else the file name: never a "Slide N" that stands in for a
    missing slide title, which would lead every breadcrumb of a deck whose first slide has none."""
    core = ooxml_title(path)
    if core and core.strip():
        return core
    return next((element.text for element in elements if isinstance(element, Title)), path.stem)


def _with_slide_extras(path: Path, presentation: Presentation, elements: list[UElement]) -> list[UElement]:
    """`elements` with each slide's chart and diagram words, then its notes, after its own."""
    by_slide: dict[int, list[UElement]] = {}
    for element in elements:
        by_slide.setdefault(element.metadata.page_number or 1, []).append(element)
    for number, slide in enumerate(presentation.slides, start=1):
        extras = [
            Text(text=text, metadata=ElementMetadata(page_number=number))
            for text in slides.graphic_texts(path, number, slide)
        ]
        frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if frame is not None and frame.text.strip():
            extras.append(
                NarrativeText(text=frame.text.strip(), metadata=ElementMetadata(page_number=number))
            )
        if extras:
            by_slide.setdefault(number, []).extend(extras)
    return [element for number in sorted(by_slide) for element in by_slide[number]]


_CORE_TITLE = "{http://purl.org/dc/elements/1.1/}title"


def ooxml_title(path: Path) -> str | None:
    """dc:title from an Office file's core properties (docProps/core.xml), if it has one."""
    with zipfile.ZipFile(path) as package:
        try:
            core = package.read("docProps/core.xml")
        except KeyError:
            return None
    return ElementTree.fromstring(core).findtext(_CORE_TITLE)


def read_email(path: Path) -> Partition:
    """The message's text, every part a mail client shows inline, in order (of alternatives, HTML,
    for its structure); the subject is the title.

    Python's get_body() gives one part: a mailing list's footer or a second note sent as a part of its
    own, shown by every client below the first, was lost without a word (iter_attachments() skips it
    as a body candidate too). Each part is read as an .html or .txt file is: unstructured's
    partition_email hands an HTML body to its HTML partitioner as it stands, so a body nested deeper
    than libxml2 reads lost its text, one holding no element crashed the partitioner, and what it
    skips as boilerplate (a <main>'s surroundings, <details>, form controls) was lost. Attachments
    are other documents; they are named in the log rather than merged into this one.
    """
    data = path.read_bytes()
    refuse_nul_bytes(path, data)
    check_is_text(path, data.decode("utf-8", errors="replace"))  # MIME parts declare their own charsets
    message = email.message_from_bytes(data, policy=email.policy.default)
    shown = _inline_text_parts(message)
    attachments = [
        part.get_filename() or part.get_content_type()
        for part in message.iter_attachments()
        if not any(part is text for text in shown)
    ]
    if attachments:
        logger.warning("%s: attachments not indexed: %s", path, ", ".join(attachments))
    return Partition(_text_parts(path, shown), message["subject"])


def message_text(path: Path, message: EmailMessage) -> list[UElement]:
    """The elements of every part of `message` that a mail client shows inline; `path` names it in
    messages. A web page saved as one file (MHT) is such a message too."""
    return _text_parts(path, _inline_text_parts(message))


def _text_parts(path: Path, parts: list[EmailMessage]) -> list[UElement]:
    """The elements of text/plain and text/html MIME parts, in order."""
    elements: list[UElement] = []
    for part in parts:
        content = part.get_content()
        if not content.strip():
            continue
        if part.get_content_type() == "text/plain":
            elements += partition_text(text=content, languages=NO_LANGUAGE_DETECTION)
        elif (readable := _readable_html(path, content)) is not None:
            elements += partition_html(text=readable, languages=NO_LANGUAGE_DETECTION)
    return elements


def _inline_text_parts(part: EmailMessage) -> list[EmailMessage]:
    """The text/plain and text/html parts of `part` that a mail client shows in the message, in order:
    of a multipart/alternative only the best (HTML, else plain text), and no attachment."""
    if part.is_attachment():  # a forwarded message attached (message/rfc822) too: another document
        return []
    if part.is_multipart():
        if part.get_content_type() == "multipart/alternative":
            best = part.get_body(preferencelist=("html", "plain"))
            return [] if best is None or best is part else _inline_text_parts(best)
        return [text for child in part.iter_parts() for text in _inline_text_parts(child)]
    return [part] if part.get_content_type() in ("text/plain", "text/html") else []
