"""Files -> ParsedDocument, through unstructured's partitioners, offline and without telemetry.

Three things about unstructured 0.27 shape this module:

* It pings a telemetry endpoint when imported and prints a sales banner on the first partition, so the
  opt-out variables are set before it is imported.
* Its text-type heuristics (is this line a heading or prose?) run on spaCy's ``en_core_web_sm``, which
  it downloads from GitHub on first use. Offline the download fails, and PDF partitioning then returns
  no elements at all. ``_install_offline_nlp`` replaces its model loader: the installed model when
  there is one, otherwise a small built-in pipeline (blank English + sentencizer + a heuristic verb
  tagger), built once per process.
* ``partition_pdf`` cannot be imported without the ``unstructured[pdf]`` extra (it imports
  ``pi_heif`` and ``unstructured_inference``, and the extra pulls a CUDA torch), so PDFs are laid out
  with pdfminer.six here and classified with unstructured's own ``element_from_text``, as its
  ``strategy="fast"`` path does.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import functools
import io
import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from ragkit.errors import ParseError

# Before unstructured is imported: its package __init__ sends the telemetry ping. Any non-empty value
# opts out, so only empty ones are filled; the notice switch must be exactly "1".
for _name, _value in (("DO_NOT_TRACK", "true"), ("SCARF_NO_ANALYTICS", "true")):
    if not os.environ.get(_name, "").strip():
        os.environ[_name] = _value
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

import lxml.html  # noqa: E402
import pptx  # noqa: E402
import spacy  # noqa: E402
import unstructured.nlp.tokenize as _unstructured_nlp  # noqa: E402
from lxml import etree  # noqa: E402
from pdfminer.converter import PDFPageAggregator  # noqa: E402
from pdfminer.layout import LAParams, LTChar, LTContainer, LTPage, LTTextBox  # noqa: E402
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect  # noqa: E402
from pdfminer.pdfinterp import PDFPageInterpreter  # noqa: E402
from pdfminer.pdfpage import PDFPage  # noqa: E402
from pdfminer.pdfparser import PDFParser  # noqa: E402
from pdfminer.pdftypes import resolve1  # noqa: E402
from pdfminer.utils import decode_text  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc, Span  # noqa: E402
from unstructured.cleaners.core import clean_extra_whitespace  # noqa: E402
from unstructured.documents.coordinates import PixelSpace  # noqa: E402
from unstructured.documents.elements import Element as UElement  # noqa: E402
from unstructured.documents.elements import ElementMetadata, NarrativeText, Text, Title  # noqa: E402
from unstructured.partition.csv import partition_csv  # noqa: E402
from unstructured.partition.docx import partition_docx  # noqa: E402
from unstructured.partition.email import partition_email  # noqa: E402
from unstructured.partition.html import partition_html  # noqa: E402
from unstructured.partition.md import partition_md  # noqa: E402
from unstructured.partition.pdf_image.pdfminer_utils import (  # noqa: E402
    CustomPDFResourceManager,
    get_text_with_deduplication,
)
from unstructured.partition.pptx import partition_pptx  # noqa: E402
from unstructured.partition.text import element_from_text, partition_text  # noqa: E402
from unstructured.partition.text_type import is_possible_numbered_list  # noqa: E402
from unstructured.partition.tsv import partition_tsv  # noqa: E402
from unstructured.partition.utils.config import env_config  # noqa: E402

from ingest.document import CODE, HEADING, LIST_ITEM, TABLE, TEXT, Element, ParsedDocument  # noqa: E402

logger = logging.getLogger(__name__)


class UnsupportedFormatError(ParseError):
    """The file type is not one ragkit parses; the pipeline reports such files as skipped, not failed."""


# ================================================================================================
# Offline NLP for unstructured's text-type heuristics
# ================================================================================================

_SPACY_MODEL = "en_core_web_sm"
# The components unstructured itself leaves out when it loads the model.
_SPACY_EXCLUDE = ["ner", "lemmatizer", "attribute_ruler"]
_FALLBACK_TAGGER = "ragkit_heuristic_tagger"


def _words(text: str) -> frozenset[str]:
    """A word list written as running text, so that it stays readable in the source."""
    return frozenset(text.split())


# unstructured only asks "does this short line contain a verb?" (prose) or "no verb?" (heading), so
# the fallback tags verbs and little else. Lemmas are common English and technical-writing verbs;
# inflected forms are derived from them. Most of these are nouns too ("use", "test", "results"), so a
# form only counts as a verb with a cue: see `_choose_tag`.
_VERB_LEMMAS = _words(
    """
    accept access achieve act add adjust admit affect agree aim allow alter analyse analyze answer
    appear apply approach argue arise arrange arrive ask assess assign assume attach attempt attend
    avoid base bear beat become begin believe belong benefit block boost borrow break bring build buy
    calculate call cancel capture care carry catch cause change charge check choose claim classify
    clean clear click close collect combine come commit compare compile complete compress compute
    concern conclude configure confirm connect consider consist contain continue contribute control
    convert copy correct cost count cover crash create cross cut deal debug decide declare decode
    decrease define delete deliver demonstrate deny depend deploy derive describe design detect
    determine develop die differ disable discover discuss display distribute divide do download draw
    drink drive drop eat embed emerge enable encode encourage end enjoy ensure enter establish estimate
    evaluate examine exceed exist expand expect explain explore export express extend extract fail fall
    feel fetch fight fill filter find finish fit fix fly flow focus follow force forget form generate
    get give go grow guarantee handle hang happen hate have hear help hide hit hold hope identify
    ignore implement imply import improve include increase indicate install intend introduce invoke
    involve issue join jump keep kill know lack last launch lay lead learn leave lend let lie like
    limit link list listen live load locate log look lose love maintain make manage map match matter
    mean measure meet merge migrate mind miss modify monitor move need note notice obtain occur offer
    open operate order organize output own parse pass pay perform persist pick place plan play point
    prefer prepare present preserve prevent print process produce provide publish pull push put query
    raise reach read realize receive recognize recommend record reduce refer reflect register reject
    relate release rely remain remember remove render repeat replace reply report represent request
    require resolve respond rest restart restore result retain retrieve return reuse review ride rise
    run save say scale search see seek seem select sell send serve set shake share shift shoot show
    shut sign sing sit skip sleep sort speak specify spend split spread stand start state stay steal
    stick stop store strike submit succeed suggest supply support suppose swim take talk target teach
    tear tell tend test thank think throw track train transfer transform translate treat trigger try
    turn understand update upgrade upload use validate vary verify view visit wait wake walk want warn
    wash watch wear win wish work worry wrap write yield
    batch cache host index label rank score ship stream tag
    """
)
# Irregular past tense and participle forms; a form listed twice is both.
_IRREGULAR_PAST = _words(
    """
    became began broke brought built bought caught chose came cost cut dealt did drew drank drove ate
    fell felt fought found flew forgot got gave went grew hung had heard hid held hit kept knew laid
    led left lent let lay lost made meant met paid put read rode rose ran said saw sought sold sent
    set shook shot showed shut sang sat slept spoke spent split spread stood stole stuck struck swam
    took taught tore told thought threw understood woke wore won wrote
    """
)
_IRREGULAR_PARTICIPLE = _words(
    """
    become begun broken brought built bought caught chosen come cost cut dealt done drawn drunk driven
    eaten fallen felt fought found flown forgotten got gotten given gone grown hung had heard hidden
    held hit kept known laid led left lent let lain lost made meant met paid put read ridden risen run
    said seen sought sold sent set shaken shot shown shut sung sat slept spoken spent split spread
    stood stolen stuck struck swum taken taught torn told thought thrown understood woken worn won
    written
    """
)
# Auxiliaries are verbs wherever they stand, and so are a few past forms that are nothing else.
_AUXILIARY_TAGS = {
    **dict.fromkeys(("am", "are", "'m", "'re", "have", "'ve"), "VBP"),
    **dict.fromkeys(("is", "has", "does"), "VBZ"),
    **dict.fromkeys(("was", "were", "had", "did"), "VBD"),
    "be": "VB",
    "been": "VBN",
}
_BE = frozenset({"am", "is", "are", "was", "were", "be", "been", "'m", "'re"})
_HAVE = frozenset({"has", "have", "had", "'ve"})
_DO = frozenset({"does", "did"})
_ALWAYS_VERBS = frozenset(_AUXILIARY_TAGS) | {"went", "took", "gave", "came", "became", "began", "knew"}
_MODALS = frozenset(
    {"can", "ca", "could", "will", "wo", "would", "shall", "should", "may", "might", "must", "'ll", "'d"}
)
_SUBJECTS = frozenset(
    {"i", "we", "you", "they", "he", "she", "it", "who", "which", "that", "this", "these", "those", "there"}
)
# Skipped when looking back for a cue: "it also stores", "does not work".
_ADVERBS = frozenset(
    {"not", "n't", "also", "always", "often", "never", "usually", "then", "only", "just", "still", "now"}
)
_NOT_GERUNDS = _words(
    """
    thing nothing something anything everything during morning evening string ceiling spring sibling
    """
)
_NOT_PARTICIPLES = frozenset({"indeed", "hundred", "kindred", "sacred", "naked", "wicked"})
_SENTENCE_END = frozenset({".", "!", "?"})
_CLOSING_PUNCT = frozenset({'"', "'", ")", "]", "\u201d", "\u2019"})
_FINITE = ("VBZ", "VBD", "VBP")


def _verb_tags(word: str) -> tuple[str, ...]:
    """The Penn verb tags `word` (lower case) could carry out of context; empty when it is no verb.

    Regular -ed and -ing forms count whatever their stem, so unknown verbs ("vectorized") are found.
    """
    if word in _AUXILIARY_TAGS:
        return (_AUXILIARY_TAGS[word],)
    tags: list[str] = []
    if word in _VERB_LEMMAS:
        tags += ["VB", "VBP"]
    if word in _IRREGULAR_PAST:
        tags.append("VBD")
    if word in _IRREGULAR_PARTICIPLE:
        tags.append("VBN")
    if word.endswith("s") and (
        word[:-1] in _VERB_LEMMAS
        or (word.endswith("es") and word[:-2] in _VERB_LEMMAS)
        or (word.endswith("ies") and word[:-3] + "y" in _VERB_LEMMAS)
        or word.endswith(("izes", "ifies"))
    ):
        tags.append("VBZ")
    if word.endswith("ed") and len(word) > 4 and word not in _NOT_PARTICIPLES:
        tags += ["VBD", "VBN"]
    if word.endswith("ing") and len(word) > 4 and word not in _NOT_GERUNDS:
        tags.append("VBG")
    if word.endswith(("ize", "ify")) and len(word) > 5:
        tags += ["VB", "VBP"]
    return tuple(dict.fromkeys(tags))


def _choose_tag(word: str, tags: tuple[str, ...], cue: str, in_sentence: bool) -> str:
    """Pick the verb reading of an ambiguous word only where English grammar points to one.

    `cue` is the previous word (adverbs skipped). A line that ends like a sentence is prose, so every
    possible verb counts there; in a bare line ("Test results", "Getting started") a word is a verb
    only after a subject, a modal or "to", or an auxiliary: that keeps headings headings.
    """
    if not tags:
        return "NN"
    if word in _ALWAYS_VERBS or in_sentence:
        return tags[0]
    wanted: tuple[str, ...] = ()
    if cue in _MODALS or cue in _DO or cue == "to":
        wanted = ("VB",)
    elif cue in _SUBJECTS:
        wanted = _FINITE
    elif cue in _BE:
        wanted = ("VBG", "VBN")
    elif cue in _HAVE:
        wanted = ("VBN",)
    return next((tag for tag in tags if tag in wanted), "NN")


def _ends_as_sentence(sentence: Span) -> bool:
    """True when the span's last token, closing quotes and brackets aside, is . ! or ?."""
    for token in reversed(sentence):
        if token.text not in _CLOSING_PUNCT:
            return token.text in _SENTENCE_END
    return False


def _tag_verbs(doc: Doc) -> Doc:
    """Set `token.tag_` to a Penn verb tag for verbs, MD/CD/./NN otherwise (only verbs are read)."""
    for sentence in doc.sents:
        in_sentence = _ends_as_sentence(sentence)
        cue = ""
        for token in sentence:
            word = token.lower_
            if token.is_punct:
                token.tag_ = "."
            elif token.like_num:
                token.tag_ = "CD"
            elif word in _MODALS:
                token.tag_ = "MD"
            else:
                token.tag_ = _choose_tag(word, _verb_tags(word), cue, in_sentence)
            if word not in _ADVERBS and not (word.endswith("ly") and word not in _VERB_LEMMAS):
                cue = word
    return doc


if not Language.has_factory(_FALLBACK_TAGGER):
    Language.component(_FALLBACK_TAGGER, func=_tag_verbs)


def _build_fallback_nlp() -> Language:
    """A pipeline with the three things unstructured reads: tokens, sentences and verb tags."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe(_FALLBACK_TAGGER)
    return nlp


@functools.lru_cache(maxsize=1)
def _load_nlp() -> Language:
    """The installed spaCy model if there is one, else the fallback; never a download. Once per process."""
    try:
        return spacy.load(_SPACY_MODEL, exclude=_SPACY_EXCLUDE)
    except OSError:
        logger.debug("spaCy model %s is not installed; using ragkit's offline fallback", _SPACY_MODEL)
    return _build_fallback_nlp()


def _install_offline_nlp() -> None:
    """Make unstructured get its spaCy pipeline from `_load_nlp` instead of its download-on-miss loader.

    unstructured.nlp.tokenize looks `_get_nlp` up as a module global on every call, so rebinding it
    covers word_tokenize, pos_tag and sent_tokenize (and their caches) at once.
    """
    if not callable(getattr(_unstructured_nlp, "_get_nlp", None)):
        raise ImportError(
            "unstructured.nlp.tokenize._get_nlp is missing: this unstructured version loads its NLP "
            "model differently, and ingest.parse cannot keep it from downloading one"
        )
    _unstructured_nlp._get_nlp = _load_nlp


_install_offline_nlp()


def nlp_backend() -> str:
    """Which pipeline unstructured's heading/prose heuristics run on: the spaCy model's name or "fallback"."""
    nlp = _load_nlp()
    return "fallback" if _FALLBACK_TAGGER in nlp.pipe_names else f"{nlp.lang}_{nlp.meta['name']}"


# ================================================================================================
# Reading text files
# ================================================================================================

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.05
# Western text in cp1252 has a few accented letters among ASCII ones; the same bytes of Cyrillic,
# Greek or CJK text come out almost all non-ASCII.
_MAX_NON_ASCII_SHARE = 0.3
_MIN_NON_ASCII_FOR_VERDICT = 20
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# WHATWG: browsers read these labels as windows-1252, and so do real pages.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "ascii", "us-ascii"})


def _decode(path: Path, data: bytes, declared: str | None = None) -> str:
    """Bytes of a text file -> str: BOM, else the declared charset, else UTF-8, else Windows-1252.

    Raises ParseError for binary data and for bytes that are not text in the encoding found, naming
    the file and the cause.
    """
    bom = next((encoding for mark, encoding in _BOMS if data.startswith(mark)), None)
    encoding = bom or declared
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"{path}: text is not valid {encoding}: {exc.reason} at byte {exc.start}"
            ) from exc
    else:
        _refuse_nul_bytes(path, data)
        text = _decode_undeclared(path, data)
    _check_is_text(path, text)
    return text


def _refuse_nul_bytes(path: Path, data: bytes) -> None:
    if b"\x00" in data:
        raise ParseError(
            f"{path}: contains NUL bytes: binary data, or text in an encoding without a byte-order mark "
            "such as UTF-16"
        )


def _decode_undeclared(path: Path, data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 (accidental validity is rare), else Windows-1252/Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    non_ascii = sum(1 for char in text if ord(char) > 127)
    visible = sum(1 for char in text if not char.isspace())
    if non_ascii >= _MIN_NON_ASCII_FOR_VERDICT and non_ascii > _MAX_NON_ASCII_SHARE * visible:
        raise ParseError(
            f"{path}: text is neither UTF-8 nor Western (Windows-1252/Latin-1); "
            f"{non_ascii} of {visible} characters would be mis-decoded; save it as UTF-8"
        )
    return text


def _check_is_text(path: Path, text: str) -> None:
    """Reject decoded text that is mostly control characters: a binary file with a text suffix."""
    controls = len(_CONTROL_CHARS.findall(text))
    if controls > _MAX_CONTROL_SHARE * max(len(text), 1):
        raise ParseError(f"{path}: not text: {controls} of {len(text)} characters are control characters")


def _html_charset(data: bytes) -> str | None:
    """The charset an HTML file declares in a <meta> tag near its start, if Python knows it."""
    match = _HTML_CHARSET.search(data[:4096])
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


# ================================================================================================
# Per-format partitioning: each returns unstructured elements and the format's own title, if any
# ================================================================================================


@dataclass
class _Partition:
    elements: list[UElement]
    title: str | None = None


def _partition_text(path: Path) -> _Partition:
    return _Partition(partition_text(text=_decode(path, path.read_bytes()), languages=NO_LANGUAGE_DETECTION))


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def _partition_markdown(path: Path) -> _Partition:
    """Markdown, with YAML front matter taken as metadata (its title) rather than as body text."""
    text = _decode(path, path.read_bytes())
    title = None
    if front_matter := _FRONT_MATTER.match(text):
        text = text[front_matter.end() :]
        if found := _FRONT_MATTER_TITLE.search(front_matter.group(1)):
            title = found.group(1).strip("'\"")
    return _Partition(partition_md(text=text, languages=NO_LANGUAGE_DETECTION) if text.strip() else [], title)


def _partition_html(path: Path) -> _Partition:
    data = path.read_bytes()
    text = _decode(path, data, _html_charset(data))
    if not text.strip():
        return _Partition([])
    return _Partition(partition_html(text=text, languages=NO_LANGUAGE_DETECTION), _html_title(text))


def _html_title(text: str) -> str | None:
    try:
        return lxml.html.document_fromstring(text).findtext(".//title")
    except (ValueError, etree.ParserError):
        return None


def _partition_table_file(partitioner: Callable[..., list[UElement]]) -> Callable[[Path], _Partition]:
    """CSV/TSV: decoded by `_decode` (unstructured's detector misreads Latin-1), then handed over as UTF-8."""

    def partition(path: Path) -> _Partition:
        text = _decode(path, path.read_bytes())
        if not text.strip():
            return _Partition([])
        return _Partition(partitioner(file=io.BytesIO(text.encode("utf-8")), languages=NO_LANGUAGE_DETECTION))

    return partition


def _partition_docx(path: Path) -> _Partition:
    return _Partition(
        partition_docx(filename=str(path), include_page_breaks=False, languages=NO_LANGUAGE_DETECTION),
        _ooxml_title(path),
    )


def _partition_pptx(path: Path) -> _Partition:
    """Slides: the title shape gives the headings, body text stays text, speaker notes end each slide.

    unstructured promotes short body lines to Titles one level below the slide title; on a slide they
    are bullet fragments, not section headings. It would put the notes *before* each slide's title,
    which files them under the previous slide, so they are read here and appended instead.
    """
    elements = [
        Text(text=element.text, metadata=element.metadata)
        if isinstance(element, Title) and element.metadata.category_depth
        else element
        for element in partition_pptx(
            filename=str(path), include_page_breaks=False, languages=NO_LANGUAGE_DETECTION
        )
    ]
    return _Partition(_with_slide_notes(path, elements), _ooxml_title(path))


def _with_slide_notes(path: Path, elements: list[UElement]) -> list[UElement]:
    by_slide: dict[int, list[UElement]] = {}
    for element in elements:
        by_slide.setdefault(element.metadata.page_number or 1, []).append(element)
    for number, slide in enumerate(pptx.Presentation(str(path)).slides, start=1):
        frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if frame is not None and frame.text.strip():
            by_slide.setdefault(number, []).append(
                NarrativeText(text=frame.text.strip(), metadata=ElementMetadata(page_number=number))
            )
    return [element for number in sorted(by_slide) for element in by_slide[number]]


_CORE_TITLE = "{http://purl.org/dc/elements/1.1/}title"


def _ooxml_title(path: Path) -> str | None:
    """dc:title from an Office file's core properties (docProps/core.xml), if it has one."""
    with zipfile.ZipFile(path) as package:
        try:
            core = package.read("docProps/core.xml")
        except KeyError:
            return None
    return ElementTree.fromstring(core).findtext(_CORE_TITLE)


def _partition_email(path: Path) -> _Partition:
    """The message body (HTML part preferred, for its structure); the subject is the title.

    Attachments are other documents; they are named in the log rather than merged into this one.
    """
    data = path.read_bytes()
    _refuse_nul_bytes(path, data)
    _check_is_text(path, data.decode("utf-8", errors="replace"))  # MIME parts declare their own charsets
    attachments = [
        part.get_filename() or part.get_content_type()
        for part in email.message_from_bytes(data, policy=email.policy.default).iter_attachments()
    ]
    if attachments:
        logger.warning("%s: attachments not indexed: %s", path, ", ".join(attachments))
    elements = partition_email(
        file=io.BytesIO(data), process_attachments=False, languages=NO_LANGUAGE_DETECTION
    )
    subject = next((element.metadata.subject for element in elements if element.metadata.subject), None)
    return _Partition(elements, subject)


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


def _partition_pdf(path: Path) -> _Partition:
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
    return _Partition(_classify_pdf_boxes(boxes), title)


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


# ================================================================================================
# Formats, mapping and the entry point
# ================================================================================================


@dataclass(frozen=True)
class _Format:
    name: str
    partition: Callable[[Path], _Partition]
    paged: bool = False


_TEXT = _Format("text", _partition_text)
_MARKDOWN = _Format("Markdown", _partition_markdown)
_HTML = _Format("HTML", _partition_html)
_FORMATS: dict[str, _Format] = {
    ".txt": _TEXT,
    ".text": _TEXT,
    ".md": _MARKDOWN,
    ".markdown": _MARKDOWN,
    ".html": _HTML,
    ".htm": _HTML,
    ".pdf": _Format("PDF", _partition_pdf, paged=True),
    ".docx": _Format("DOCX", _partition_docx),
    ".pptx": _Format("PPTX", _partition_pptx, paged=True),
    ".eml": _Format("email", _partition_email),
    ".csv": _Format("CSV", _partition_table_file(partition_csv)),
    ".tsv": _Format("TSV", _partition_table_file(partition_tsv)),
}
# unstructured detects each document's language (langdetect, a quarter of parse time) only to fill
# metadata ragkit never stores; [""] is its documented "skip" value.
NO_LANGUAGE_DETECTION = [""]
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMATS)

_KINDS = {"Title": HEADING, "ListItem": LIST_ITEM, "Table": TABLE, "CodeSnippet": CODE}
# Page furniture, not content.
_NOISE = frozenset({"Header", "Footer", "PageNumber", "PageBreak"})


def parse(path: Path) -> ParsedDocument:
    """Parse one file into a title and elements in reading order.

    Raises UnsupportedFormatError for a file type outside SUPPORTED_SUFFIXES and ParseError, naming
    the file and the cause, for a file that cannot be read or holds no text. A module-level function
    of a path only, so a ProcessPoolExecutor can run it.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        partition = fmt.partition(path)
    except ParseError:
        raise
    except OSError as exc:
        raise ParseError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except zipfile.BadZipFile as exc:
        raise ParseError(f"{path}: corrupt or truncated {fmt.name} file (not a readable ZIP): {exc}") from exc
    except Exception as exc:  # any failure inside a parser is this document's failure, not the job's
        raise ParseError(f"{path}: cannot parse {fmt.name}: {type(exc).__name__}: {exc}") from exc
    elements = [element for raw in partition.elements if (element := _convert(raw, fmt.paged))]
    if not elements:
        raise ParseError(f"{path}: no extractable text")
    return ParsedDocument(path=path, title=_title(path, partition.title, elements), elements=elements)


def _convert(raw: UElement, paged: bool) -> Element | None:
    """One unstructured element -> one ragkit Element, or None for page furniture and empty blocks."""
    if raw.category in _NOISE or not raw.text.strip():
        return None
    kind = _KINDS.get(raw.category, TEXT)
    metadata = raw.metadata
    if kind == CODE:
        text = raw.text.strip("\n").rstrip()
    elif kind == TABLE:
        text = _table_rows(metadata.text_as_html) or raw.text.strip()
    else:
        text = raw.text.strip()
    return Element(
        kind=kind,
        text=text,
        level=(metadata.category_depth or 0) + 1 if kind == HEADING else None,
        page=metadata.page_number if paged else None,
    )


def _table_rows(html: str | None) -> str:
    """A table as plain-text rows, cells joined by " | ": unstructured's own text runs all cells together."""
    if not html:
        return ""
    rows = []
    for row in lxml.html.fragment_fromstring(html, create_parent="div").iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _title(path: Path, metadata_title: str | None, elements: list[Element]) -> str:
    """The format's title metadata, else the first top-level heading, else the file name's stem."""
    if metadata_title and metadata_title.strip():
        return " ".join(metadata_title.split())
    headings = [element for element in elements if element.kind == HEADING]
    if headings:
        top = min(heading.level or 1 for heading in headings)
        return next(heading.text for heading in headings if (heading.level or 1) == top)
    return path.stem
