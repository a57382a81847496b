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
* footnotes and endnotes, which live in parts of their own that nothing reads;
* alternative format chunks (`w:altChunk`): a part in another format (HTML, plain text, MHT, another
  .docx) that Word imports where the element stands, as web editors and mail merges write them.

The wrappers are unwrapped in place, their properties dropped; a text box's paragraphs follow the
paragraph that anchors it, as a reader meets them. Word keeps an old-style copy of each text box
for other readers (`mc:Fallback`); only the current one is read. A note's paragraphs follow the
paragraph that first cites it, so that its words land in the section they annotate (at the end of
the document an endnote would be filed under the last heading); their links lose their targets,
which belong to the notes' part. A chunk is not WordprocessingML, so it cannot be moved in: its
element becomes a paragraph whose text is the chunk's marker, and the chunk's part goes to the
caller (ingest.parse.formats), which partitions it in its own format and puts its elements where
the marker's paragraph (or the table cell holding it) is. Documents without any of these are passed
on untouched.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import posixpath
import zipfile
from dataclasses import dataclass
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
_ALT_CHUNK_RELATIONSHIP = f"{_RELATIONSHIP}/aFChunk"
_ALT_CHUNK = f"{{{_W}}}altChunk"
_RELATIONSHIP_ID = f"{{{_RELATIONSHIP}}}id"
_CONTENT_TYPES = "[Content_Types].xml"
_CONTENT_TYPES_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
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


@dataclass(frozen=True)
class AltChunk:
    """A part in another format that Word imports where the body's w:altChunk stands."""

    marker: str  # the whole text of the paragraph that stands in for it in the rewritten body
    part: str  # its member of the package
    content_type: str  # as [Content_Types].xml declares it, lower case, without parameters; "" if none
    data: bytes


@dataclass(frozen=True)
class ReadableDocx:
    package: io.BytesIO | None  # None: the package reads whole as it is
    chunks: list[AltChunk]


def readable_docx(path: Path, data: bytes | None = None) -> ReadableDocx:
    """The package rewritten in memory so that its main part holds its text where python-docx reads
    it (None where it does so already), and the chunks that stand in it as markers. `data` is the
    package where it is not the file at `path` (a .docx imported into another, `path` naming it in
    messages). The size caps of ingest.parse.limits were checked before."""
    with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as package:
        name = _main_part(package)
        if name is None:
            return ReadableDocx(None, [])  # python-docx says what is wrong with the package
        source = package.read(name)
        try:
            root = etree.fromstring(source, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ParseError(
                f"{path}: cannot parse DOCX: its part {name} is not well-formed XML: {exc}"
            ) from exc
        related = _related_parts(package, name)
        # The markers hold a digest of the part they stand in, so that no text of it can be one.
        chunks = _stand_in_for_chunks(path, package, root, related, hashlib.sha256(source).hexdigest()[:16])
        unwrapped = _unwrap(root)
        noted = _insert_notes(root, _notes(path, package, related))
        imports = any(kind == _ALT_CHUNK_RELATIONSHIP for kind, _ in related.values())
        if not (unwrapped or noted or imports):
            return ReadableDocx(None, [])
        rewritten = {name: etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)}
        if imports:
            relationships = _relationships_part(name)
            rewritten[relationships] = _without_chunk_relationships(package.read(relationships))
        readable = io.BytesIO()
        with zipfile.ZipFile(readable, "w", zipfile.ZIP_STORED) as package_copy:
            for member in package.infolist():  # stored: read once, at once, no use squeezing it
                content = rewritten.get(member.filename) or package.read(member)
                package_copy.writestr(zipfile.ZipInfo(member.filename, member.date_time), content)
    readable.seek(0)
    return ReadableDocx(readable, chunks)


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


def _related_parts(package: zipfile.ZipFile, main: str) -> dict[str, tuple[str, str]]:
    """The main part's relationships to parts inside the package: id -> (type, member name). None
    where its relationships part is missing or broken: python-docx reads the same one, and says so."""
    try:
        relationships = etree.fromstring(package.read(_relationships_part(main)), _PARSER)
    except (KeyError, etree.XMLSyntaxError):
        return {}
    folder = posixpath.dirname(main)
    related = {}
    for relationship in relationships:
        target = relationship.get("Target")
        if not target or relationship.get("TargetMode") == "External":
            continue
        related[relationship.get("Id", "")] = (
            relationship.get("Type", ""),
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target)),
        )
    return related


def _relationships_part(part: str) -> str:
    folder, file = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{file}.rels")


def _without_chunk_relationships(data: bytes) -> bytes:
    """The main part's relationships less those to chunks, which python-docx would load as parts of
    the type they declare: a .docx chunk declares the document part's own, and python-docx failed the
    whole document on it as XML that is not well-formed."""
    relationships = etree.fromstring(data, _PARSER)
    for relationship in [r for r in relationships if r.get("Type") == _ALT_CHUNK_RELATIONSHIP]:
        relationships.remove(relationship)
    return etree.tostring(relationships, xml_declaration=True, encoding="UTF-8", standalone=True)


def _stand_in_for_chunks(
    path: Path,
    package: zipfile.ZipFile,
    root: etree._Element,
    related: dict[str, tuple[str, str]],
    nonce: str,
) -> list[AltChunk]:
    """Replace each w:altChunk by a paragraph of its marker; the chunks so replaced. One whose
    relationship names no part of the package holds nothing to read, and is named in a warning."""
    chunks: list[AltChunk] = []
    content_types: dict[str, str] | None = None
    for element in list(root.iter(_ALT_CHUNK)):
        kind, part = related.get(identifier := element.get(_RELATIONSHIP_ID, ""), ("", ""))
        if kind != _ALT_CHUNK_RELATIONSHIP or part not in package.namelist():
            logger.warning(
                "%s: an imported chunk (w:altChunk r:id=%r) names no part of the package; left out",
                path,
                identifier,
            )
            element.getparent().remove(element)
            continue
        if content_types is None:
            content_types = _content_types(package)
        marker = f"ragkit-alt-chunk-{nonce}-{len(chunks)}"
        paragraph = etree.Element(_PARAGRAPH)
        etree.SubElement(etree.SubElement(paragraph, f"{{{_W}}}r"), f"{{{_W}}}t").text = marker
        element.getparent().replace(element, paragraph)
        extension = posixpath.splitext(part)[1].lstrip(".")
        declared = content_types.get(part.lower()) or content_types.get(f"*.{extension.lower()}", "")
        chunks.append(AltChunk(marker, part, declared.split(";")[0].strip().lower(), package.read(part)))
    return chunks


def _content_types(package: zipfile.ZipFile) -> dict[str, str]:
    """[Content_Types].xml as member name (lower case, as part names compare) or `*.extension` ->
    content type; empty where it is missing or broken."""
    try:
        types = etree.fromstring(package.read(_CONTENT_TYPES), _PARSER)
    except (KeyError, etree.XMLSyntaxError):
        return {}
    found = {
        f"*.{default.get('Extension', '').lower()}": default.get("ContentType", "")
        for default in types.iter(f"{{{_CONTENT_TYPES_NS}}}Default")
    }
    for override in types.iter(f"{{{_CONTENT_TYPES_NS}}}Override"):
        found[override.get("PartName", "").lstrip("/").lower()] = override.get("ContentType", "")
    return found


def _notes(
    path: Path, package: zipfile.ZipFile, related: dict[str, tuple[str, str]]
) -> dict[str, dict[str, etree._Element]]:
    """The document's footnotes and endnotes by the tag that cites them and their id, each unwrapped;
    none where no relationship names a notes part. A notes part that is not well-formed XML is left
    out with a warning: nothing else reads it, and the body is still good."""
    notes: dict[str, dict[str, etree._Element]] = {}
    for kind, part in related.values():
        if kind not in _NOTES:
            continue
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
        if next(part_root.iter(_ALT_CHUNK), None) is not None:
            logger.warning(
                "%s: its notes part %s imports chunks of other formats; they are left out", path, part
            )
        note_tag, cite_tag = _NOTES[kind]
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
