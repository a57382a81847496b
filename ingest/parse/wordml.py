"""A .docx's main part rewritten so that unstructured's DOCX partitioner reads all of its text.

unstructured reads a Word document through python-docx, which sees only the paragraphs and tables
directly in the body (or in a table cell) and, in a paragraph, only its runs and hyperlinks. Text
that Word shows but that sits one element deeper was dropped without a word:

* content controls (`w:sdt`): a template's cover page, a form's fields, a table of contents, whole
  blocks of a document made from one, and the rows of a table inside one;
* tracked insertions and moves (`w:ins`, `w:moveTo`): the document's current text while changes
  are tracked (deletions, `w:del` and `w:moveFrom`, are not shown as text and stay left out);
* smart tags, custom XML markup, simple fields (a title or a date field's shown result) and
  bidirectional-text wrappers (`w:smartTag`, `w:customXml`, `w:fldSimple`, `w:dir`, `w:bdo`);
* text boxes (`w:txbxContent`), whose paragraphs hang inside a drawing in a run;
* footnotes and endnotes, which live in parts of their own that nothing reads.

The wrappers are unwrapped in place, their properties dropped; a text box's paragraphs follow the
paragraph that anchors it, as a reader meets them. Word keeps an old-style copy of each text box
for other readers (`mc:Fallback`); only the current one is read. A note's paragraphs follow the
paragraph that first cites it, so that its words land in the section they annotate (at the end of
the document an endnote would be filed under the last heading); their links lose their targets,
which belong to the notes' part. Documents without any of these are passed on untouched.
"""

from __future__ import annotations

import copy
import io
import logging
import posixpath
import zipfile
from pathlib import Path

from lxml import etree

from ragkit.errors import ParseError

logger = logging.getLogger(__name__)

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_PACKAGE_RELATIONSHIPS = "_rels/.rels"
_OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_RELATIONSHIP = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NOTES = {  # relationship type of the part -> its notes' tag, the tag that cites one
    f"{_RELATIONSHIP}/footnotes": (f"{{{_W}}}footnote", f"{{{_W}}}footnoteReference"),
    f"{_RELATIONSHIP}/endnotes": (f"{{{_W}}}endnote", f"{{{_W}}}endnoteReference"),
}
_NOTE_ID = f"{{{_W}}}id"
_NOTE_TYPE = f"{{{_W}}}type"  # set on the separator lines Word keeps as notes; real notes have none
_PARSER = etree.XMLParser(resolve_entities=False)
_WRAPPERS = tuple(
    f"{{{_W}}}{name}"
    for name in ("sdt", "sdtContent", "ins", "moveTo", "smartTag", "customXml", "fldSimple", "dir", "bdo")
)
# The properties of a wrapper, which hold no text a reader sees (a content control's placeholder
# setting, a smart tag's attributes); dropped with the wrapper.
_WRAPPER_PROPERTIES = frozenset(
    f"{{{_W}}}{name}" for name in ("sdtPr", "sdtEndPr", "smartTagPr", "customXmlPr", "fldData")
)
_PARAGRAPH = f"{{{_W}}}p"
_TEXT_BOX = f"{{{_W}}}txbxContent"
_FALLBACK = f"{{{_MC}}}Fallback"


def readable_docx(path: Path) -> io.BytesIO | None:
    """A copy of the package in memory whose main part holds its text where python-docx reads it, or
    None where it holds it there already. The size caps of ingest.parse.limits were checked before."""
    with zipfile.ZipFile(path) as package:
        name = _main_part(package)
        if name is None:
            return None  # python-docx says what is wrong with the package
        try:
            root = etree.fromstring(package.read(name), _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ParseError(
                f"{path}: cannot parse DOCX: its part {name} is not well-formed XML: {exc}"
            ) from exc
        unwrapped = _unwrap(root)
        noted = _insert_notes(root, _notes(path, package, name))
        if not (unwrapped or noted):
            return None
        main = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        readable = io.BytesIO()
        with zipfile.ZipFile(readable, "w", zipfile.ZIP_STORED) as rewritten:
            for member in package.infolist():  # stored: read once, at once, no use squeezing it
                data = main if member.filename == name else package.read(member)
                rewritten.writestr(zipfile.ZipInfo(member.filename, member.date_time), data)
    readable.seek(0)
    return readable


def _main_part(package: zipfile.ZipFile) -> str | None:
    """The member holding the document's body, as the package's relationships name it (Word calls it
    word/document.xml, other writers may not); None where there is no such member."""
    try:
        relationships = etree.fromstring(package.read(_PACKAGE_RELATIONSHIPS), _PARSER)
    except KeyError:
        return None
    for relationship in relationships:
        if relationship.get("Type") == _OFFICE_DOCUMENT and (target := relationship.get("Target")):
            name = target.lstrip("/")
            return name if name in package.namelist() else None
    return None


def _notes(path: Path, package: zipfile.ZipFile, main: str) -> dict[str, dict[str, etree._Element]]:
    """The document's footnotes and endnotes by the tag that cites them and their id, each unwrapped;
    none where the part is missing or its relationships do not name it. A notes part that is not
    well-formed XML is left out with a warning: nothing else reads it, and the body is still good."""
    folder, file = posixpath.split(main)
    try:
        relationships = etree.fromstring(
            package.read(posixpath.join(folder, "_rels", f"{file}.rels")), _PARSER
        )
    except (KeyError, etree.XMLSyntaxError):
        return {}  # python-docx reads the same relationships, and says what is wrong with them
    notes: dict[str, dict[str, etree._Element]] = {}
    for relationship in relationships:
        kind, target = _NOTES.get(relationship.get("Type", "")), relationship.get("Target")
        if kind is None or not target or relationship.get("TargetMode") == "External":
            continue
        part = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        try:
            part_root = etree.fromstring(package.read(part), _PARSER)
        except KeyError:
            continue
        except etree.XMLSyntaxError as exc:
            logger.warning(
                "%s: its notes part %s is not well-formed XML (%s); its notes are left out", path, part, exc
            )
            continue
        _unwrap(part_root)
        note_tag, cite_tag = kind
        notes[cite_tag] = {
            note.get(_NOTE_ID, ""): note for note in part_root.iter(note_tag) if note.get(_NOTE_TYPE) is None
        }
    return notes


def _insert_notes(root: etree._Element, notes: dict[str, dict[str, etree._Element]]) -> bool:
    """Put a copy of each cited note's blocks after the paragraph that first cites it; whether any."""
    placed: set[tuple[str, str]] = set()
    last_after: dict[etree._Element, etree._Element] = {}
    for cite_tag, by_id in notes.items():
        for citation in list(root.iter(cite_tag)):
            note = by_id.get(key := citation.get(_NOTE_ID, ""))
            anchor = next(citation.iterancestors(_PARAGRAPH), None)
            if note is None or (cite_tag, key) in placed or anchor is None or anchor.getparent() is None:
                continue
            placed.add((cite_tag, key))
            _place_after(anchor, [_without_targets(copy.deepcopy(block)) for block in note], last_after)
    return bool(placed)


def _place_after(
    anchor: etree._Element, blocks: list[etree._Element], last_after: dict[etree._Element, etree._Element]
) -> None:
    """Move `blocks` after the paragraph `anchor`, in order, after any placed there before; `last_after`
    keeps each anchor's last placed block."""
    after = last_after.get(anchor, anchor)
    for block in blocks:
        after.addnext(block)
        after = block
    last_after[anchor] = after


def _without_targets(block: etree._Element) -> etree._Element:
    """`block` without the relationship ids (of a link, an image) that belong to the part it came from,
    which in the main part would name another target or none."""
    for element in block.iter(etree.Element):
        for name in [name for name in element.attrib if name.startswith(f"{{{_RELATIONSHIP}}}")]:
            del element.attrib[name]
    return block


def _unwrap(root: etree._Element) -> bool:
    """Unwrap every wrapper and lift every text box's blocks out; whether there was any."""
    wrappers = list(root.iter(*_WRAPPERS))
    for wrapper in wrappers:
        parent = wrapper.getparent()
        if parent is None:
            continue
        at = parent.index(wrapper)
        for child in [child for child in wrapper if child.tag not in _WRAPPER_PROPERTIES]:
            parent.insert(at, child)
            at += 1
        parent.remove(wrapper)
    boxes = [box for box in root.iter(_TEXT_BOX) if not any(a.tag == _FALLBACK for a in box.iterancestors())]
    last_after: dict[etree._Element, etree._Element] = {}
    for box in boxes:
        anchor = next((a for a in box.iterancestors(_PARAGRAPH)), None)
        if anchor is None or anchor.getparent() is None:
            continue
        _place_after(anchor, list(box), last_after)
    return bool(wrappers or boxes)
