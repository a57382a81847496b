"""ingest.parse: every supported format parsed for real, offline, into headings, text, lists, tables, code."""

from __future__ import annotations

import concurrent.futures
import io
import os
import pickle
import subprocess
import sys
import zipfile
from email.message import EmailMessage
from pathlib import Path

import docx
import pptx
import pptx.opc.package
import pptx.opc.packuri
import pptx.oxml
import pptx.slide
import pytest
import spacy
import unstructured.nlp.tokenize as unstructured_nlp
from docx.oxml import parse_xml
from docx.oxml.xmlchemy import BaseOxmlElement
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.util import Emu, Inches
from pypdf import PdfReader, PdfWriter
from tokenizers import Tokenizer

from ingest.document import CODE, HEADING, LIST_ITEM, TABLE, TEXT, ParsedDocument
from ingest.parse import SUPPORTED_SUFFIXES, UnsupportedFormatError, nlp_backend, parse
from ingest.sections import build_sections
from ragkit.errors import ParseError
from tests.hostile import pdf_file

# ------------------------------------------------------------------------------------- helpers ----


def write_pdf(
    path: Path, pages: list[list[tuple[float, float, str, bool]]], title: str | None = None
) -> Path:
    """A real, minimal PDF: one line of Helvetica (or Helvetica-Bold) per (size, y, text, bold) tuple.

    The fonts have Adobe's standard encoding, where byte 0xAE is the "fi" ligature, with byte 0xAD
    made the soft hyphen (a word processor's optional hyphen, drawn at a line end)."""
    objects: list[bytes] = [b"", b""]  # catalog and page tree, filled in once the pages exist
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding << /Differences [173 /sfthyphen] >> >>"
    fonts = {
        False: _pdf_add(objects, font % b"Helvetica"),
        True: _pdf_add(objects, font % b"Helvetica-Bold"),
    }
    kids = []
    for lines in pages:
        stream = "\n".join(
            f"BT /F{int(bold)} {size} Tf 72 {y} Td ({_pdf_escape(text)}) Tj ET"
            for size, y, text, bold in lines
        ).encode("latin-1")
        content = _pdf_add(objects, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        resources = b"<< /Font << /F0 %d 0 R /F1 %d 0 R >> >>" % (fonts[False], fonts[True])
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources %s >>"
        kids.append(_pdf_add(objects, page % (content, resources)))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    trailer = b""
    if title:
        trailer = b" /Info %d 0 R" % _pdf_add(objects, b"<< /Title (%s) >>" % _pdf_escape(title).encode())
    path.write_bytes(pdf_file(objects, trailer))
    return path


def _pdf_add(objects: list[bytes], body: bytes) -> int:
    objects.append(body)
    return len(objects)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def paragraph(top: float, *lines: str) -> list[tuple[float, float, str, bool]]:
    """Body text: 11 pt lines 14 pt apart, which pdfminer groups into one text box."""
    return [(11, top - 14 * number, line, False) for number, line in enumerate(lines)]


def on_page(number: int, *lines: tuple[float, float, str, bool]) -> list[tuple[float, float, str, bool]]:
    """Page lines between a running header and a page number, as a report has them."""
    return [(9, 765, "ragkit design notes", False), *lines, (9, 30, str(number), False)]


REPORT_PAGES = [
    on_page(
        1,
        (20, 700, "Parsing Long Documents", False),
        *paragraph(
            670, "Long documents are cut into whole sections before embedding.", "Each keeps its heading."
        ),
        (15, 610, "Background", True),
        *paragraph(585, "Retrieval works better when a passage carries its context."),
    ),
    on_page(
        2,
        (15, 700, "Method", True),
        (12, 670, "How sections get breadcrumbs", True),
        *paragraph(645, "A breadcrumb lists the headings above a section.", "It is stored with every point."),
    ),
    on_page(
        3,
        (15, 700, "Results", True),
        *paragraph(675, "Whole sections beat fixed-size chunks."),
        (11, 640, "Figure 2: recall by document length", False),  # short, verbless, but set as body text
        (11, 610, "\xb7 Breadcrumbs are cheap", True),  # a bold bullet point (0xB7 is Helvetica's bullet)
        (11, 590, "2. Ablations", True),  # a numbered heading at body size, set in bold
    ),
]
# What the report must parse into, page by page: headings by type size and weight, the running header
# and page numbers gone, every other line kept.
REPORT_ELEMENTS = [
    (HEADING, "Parsing Long Documents", 1, 1),
    (TEXT, "Long documents are cut into whole sections before embedding. Each keeps its heading.", None, 1),
    (HEADING, "Background", 2, 1),
    (TEXT, "Retrieval works better when a passage carries its context.", None, 1),
    (HEADING, "Method", 2, 2),
    (HEADING, "How sections get breadcrumbs", 3, 2),  # a verb in it: typography decides, not grammar
    (TEXT, "A breadcrumb lists the headings above a section. It is stored with every point.", None, 2),
    (HEADING, "Results", 2, 3),
    (TEXT, "Whole sections beat fixed-size chunks.", None, 3),
    (TEXT, "Figure 2: recall by document length", None, 3),
    (LIST_ITEM, "Breadcrumbs are cheap", None, 3),
    (HEADING, "2. Ablations", 4, 3),
]


def kinds(document: ParsedDocument) -> list[tuple[str, str, int | None]]:
    return [(element.kind, element.text, element.level) for element in document.elements]


def all_text(document: ParsedDocument) -> str:
    return " ".join(" ".join(element.text for element in document.elements).split())


# ------------------------------------------------------------------------------ formats: text ----


def test_plain_text_tells_headings_from_prose(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(
        "Getting started\n\n"
        "The parser stores elements in reading order.\n\n"
        "Test results\n\n"
        "Whole sections were embedded in one piece. Recall rose on long reports.\n\n"
        "- keep headings\n\n"
        "We use Qdrant for storage\n"
    )

    document = parse(path)

    assert kinds(document) == [
        (HEADING, "Getting started", 1),
        (TEXT, "The parser stores elements in reading order.", None),
        (HEADING, "Test results", 1),
        (TEXT, "Whole sections were embedded in one piece. Recall rose on long reports.", None),
        (LIST_ITEM, "keep headings", None),
        (TEXT, "We use Qdrant for storage", None),
    ]
    assert document.title == "Getting started"
    assert document.path == path


def test_text_without_headings_is_titled_by_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "meeting-notes.txt"
    path.write_text("We agreed to ship the parser first.\n")

    assert parse(path).title == "meeting-notes"


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8-sig", "utf-16"])
def test_text_in_other_encodings_is_decoded_not_rejected(tmp_path: Path, encoding: str) -> None:
    text = "Le garçon a mangé une crème brûlée à Zürich, naïvement."
    if encoding == "cp1252":
        text += " Il a payé 5\u20ac \u201cseulement\u201d."
    path = tmp_path / "french.txt"
    path.write_bytes(text.encode(encoding))

    assert all_text(parse(path)) == text


def test_utf8_text_with_a_stray_windows_1252_byte_keeps_its_accents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Read all as Windows-1252 for one pasted curly quote, every accent came out as "Ã©"."""
    path = tmp_path / "notes.txt"
    path.write_bytes("Caf\u00e9 cr\u00e8me in Z\u00fcrich, ".encode() + b"it\x92s the best.")

    assert all_text(parse(path)) == "Caf\u00e9 cr\u00e8me in Z\u00fcrich, it\u2019s the best."
    assert (
        "notes.txt: UTF-8 text holds bytes that are not UTF-8 (1); they are read as Windows-1252"
        in caplog.text
    )


def test_empty_and_blank_files_have_no_extractable_text(tmp_path: Path) -> None:
    markup_without_elements = [
        ("comment.html", "<!-- drafted later -->"),
        ("doctype.html", "<!DOCTYPE html>"),
        ("instruction.html", "<?php echo $x ?>"),
        ("comment.md", "<!-- drafted later -->\n"),
    ]
    for name, content in [
        ("empty.txt", ""),
        ("blank.md", "  \n\n\t\n"),
        ("empty.html", ""),
        *markup_without_elements,
    ]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ParseError, match=rf"{name}: no extractable text"):
            parse(path)


def test_binary_data_renamed_txt_is_refused(tmp_path: Path) -> None:
    with_nul = tmp_path / "image.txt"
    with_nul.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    without_nul = tmp_path / "blob.txt"
    without_nul.write_bytes(bytes(range(1, 32)) * 20 + b"some text")

    with pytest.raises(ParseError, match=r"image\.txt: contains NUL bytes"):
        parse(with_nul)
    with pytest.raises(ParseError, match=r"blob\.txt: not text: \d+ of \d+ characters are control"):
        parse(without_nul)


def test_a_coloured_terminal_log_is_read_without_its_escape_sequences(tmp_path: Path) -> None:
    """Colours (CSI ... m), a cleared line (CSI K), a window title and a hyperlink (OSC, ended by BEL
    or ESC backslash) and a character-set switch (ESC ( B) are formatting: they go, their words stay.
    With a colour code every few words, the log was refused as "not text" before."""
    path = tmp_path / "build.txt"
    lines = [
        "\x1b]0;ci: build #42\x07\x1b[1mBuild report\x1b[0m",
        "",
        *(f"\x1b[32mPASS\x1b[0m test_{n} \x1b[2m(0.{n}s)\x1b[0m\x1b[K" for n in range(6)),
        "\x1b[1;31merror:\x1b[0m see \x1b]8;;https://ci.example/42\x1b\\the log\x1b]8;;\x1b\\ \x1b(Bfor details",
    ]
    path.write_text("\n".join(lines) + "\n")

    text = " ".join(element.text for element in parse(path).elements)

    assert "\x1b" not in text and "[0m" not in text and "ci: build" not in text
    assert text.split() == [
        "Build", "report",
        *(word for n in range(6) for word in ("PASS", f"test_{n}", f"(0.{n}s)")),
        "error:", "see", "the", "log", "for", "details",
    ]  # fmt: skip


def test_text_in_a_non_western_legacy_encoding_is_refused_not_garbled(tmp_path: Path) -> None:
    path = tmp_path / "russian.txt"
    path.write_bytes("Привет, это русский текст в старой кодировке Windows.".encode("cp1251"))

    with pytest.raises(ParseError, match=r"russian\.txt: text is neither UTF-8 nor Western"):
        parse(path)


# -------------------------------------------------------------------------- formats: markup ----


def test_markdown_keeps_heading_levels_lists_code_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "---\ntitle: The Ragkit Guide\nauthor: someone\n---\n\n"
        "# Install\n\nRun the installer once.\n\n"
        "## Options\n\n- fast mode\n- exact mode\n\n"
        "```python\ndef parse(path):\n    return path\n```\n\n"
        "### Limits\n\n| name | tokens |\n|------|--------|\n| gte  | 8192   |\n"
    )

    document = parse(path)

    assert kinds(document) == [
        (TEXT, "title: The Ragkit Guide\nauthor: someone", None),  # front matter: kept, read as text
        (HEADING, "Install", 1),
        (TEXT, "Run the installer once.", None),
        (HEADING, "Options", 2),
        (LIST_ITEM, "fast mode", None),
        (LIST_ITEM, "exact mode", None),
        (CODE, "def parse(path):\n    return path", None),
        (HEADING, "Limits", 3),
        (TABLE, "name | tokens\ngte | 8192", None),
    ]
    assert document.title == "The Ragkit Guide"  # from the front matter, which Markdown does not read


def test_markdown_that_opens_with_a_rule_keeps_the_prose_up_to_the_next_rule(tmp_path: Path) -> None:
    """Only a YAML mapping between the opening `---` lines is front matter; prose there is the body."""
    path = tmp_path / "notes.md"
    path.write_text(
        "---\n\nThe parser keeps every word of a page.\nIt never guesses what is metadata.\n\n---\n\n"
        "# Install\n\nRun the installer once.\n"
    )

    document = parse(path)

    assert kinds(document) == [
        (TEXT, "The parser keeps every word of a page. It never guesses what is metadata.", None),
        (HEADING, "Install", 1),
        (TEXT, "Run the installer once.", None),
    ]
    assert document.title == "Install"


def test_markdown_front_matter_with_lists_and_nested_keys_is_one_text_block(tmp_path: Path) -> None:
    front_matter = (
        'title: "Tuning: a guide"\ntags:\n- search\n- ranking\nauthor:\n  name: Ada\n'
        "# reviewed in May\ndescription: How to tune hybrid search."
    )
    path = tmp_path / "tuning.md"
    path.write_text(f"---\n{front_matter}\n---\n# Weights\n\nStart from equal weights.\n")

    document = parse(path)

    assert document.title == "Tuning: a guide"
    assert kinds(document) == [
        (TEXT, front_matter, None),
        (HEADING, "Weights", 1),
        (TEXT, "Start from equal weights.", None),
    ]


def test_markdown_front_matter_title_written_as_a_yaml_block_scalar_gives_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "---\ntitle: >\n  Pump maintenance:\n  a field guide\nauthor: Ada\n---\n\nOil it weekly.\n"
    )

    assert parse(path).title == "Pump maintenance: a field guide"  # it was ">"


def test_markdown_front_matter_with_windows_line_endings_gives_the_title(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"---\r\ntitle: Release notes\r\n---\r\n\r\n# Fixes\r\n\r\nA crash on start.\r\n")

    document = parse(path)

    assert document.title == "Release notes"
    assert [text for _, text, _ in kinds(document)] == ["title: Release notes", "Fixes", "A crash on start."]


def test_html_title_headings_and_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Search API</title></head><body>"
        "<h1>Endpoints</h1><p>The service answers queries.</p>"
        "<h2>Query</h2><ul><li>text</li><li>limit</li></ul>"
        "<table><tr><th>field</th><th>type</th></tr><tr><td>limit</td><td>int</td></tr></table>"
        "</body></html>"
    )

    document = parse(path)

    assert document.title == "Search API"
    assert kinds(document) == [
        (HEADING, "Endpoints", 1),
        (TEXT, "The service answers queries.", None),
        (HEADING, "Query", 2),
        (LIST_ITEM, "text", None),
        (LIST_ITEM, "limit", None),
        (TABLE, "field | type\nlimit | int", None),
    ]


def test_html_keeps_the_blocks_unstructured_skips_as_boilerplate(tmp_path: Path) -> None:
    """Navigation, collapsed details, figures, forms and all that lies outside <main> are page text."""
    path = tmp_path / "install.html"
    path.write_text(
        "<html><head><title>Install guide</title></head><body>"
        "<header><p>Ragkit documentation</p></header>"
        '<nav><a href="/">Home</a> <a href="/install">Install</a></nav>'
        "<main><h1>Install</h1><p>Run the installer once.</p>"
        "<details><summary>Offline install</summary><p>Copy the wheel to the machine first.</p></details>"
        "<figure><pre>pip install ragkit</pre><figcaption>The install command.</figcaption></figure>"
        '<form><p>Tell us how the install went.</p><input type="text"></form></main>'
        "<aside><p>See also the upgrade notes.</p></aside>"
        "<footer><p>Written by the docs team.</p></footer></body></html>"
    )

    document = parse(path)

    assert kinds(document) == [
        (TEXT, "Ragkit documentation", None),
        (TEXT, "Home Install", None),
        (HEADING, "Install", 1),
        (TEXT, "Run the installer once.", None),
        (TEXT, "Offline install", None),
        (TEXT, "Copy the wheel to the machine first.", None),
        (CODE, "pip install ragkit", None),
        (TEXT, "The install command.", None),
        (TEXT, "Tell us how the install went.", None),
        (TEXT, "See also the upgrade notes.", None),
        (TEXT, "Written by the docs team.", None),
    ]
    assert document.title == "Install guide"


def test_html_keeps_what_a_reader_sees_in_noscript_templates_dialogs_and_form_controls(
    tmp_path: Path,
) -> None:
    """unstructured drops all of these; each is text a reader of the page sees (ragkit runs no script,
    so it is the reader <noscript> is for). A hidden field's and a password's values are not."""
    path = tmp_path / "pumps.html"
    path.write_text(
        "<html><body><h1>Pump finder</h1>"
        "<noscript><p>Without JavaScript the pump map is a list.</p></noscript>"
        "<template><p>Centrifugal pumps move water by spinning.</p></template>"
        "<dialog><p>Pumps ship within two days.</p></dialog>"
        "<p>Model <del>P-90</del> P-100 replaces it.</p>"
        '<form><label for="q">Search the catalogue</label>'
        '<input id="q" value="P-100" placeholder="Type a pump model">'
        '<input type="hidden" name="token" value="c2VjcmV0"><input type="password" value="hunter2">'
        '<input type="submit" value="Find pumps"><button>Reset filters</button><button>Help</button>'
        '<select><optgroup label="Rotary"><option>Gear pumps</option><option>Vane pumps</option>'
        "</optgroup></select><textarea>Describe the leak</textarea></form>"
        '<svg><text x="1">Inlet</text><text x="9">Outlet</text></svg>'
        "</body></html>"
    )

    document = parse(path)

    assert kinds(document) == [
        (HEADING, "Pump finder", 1),
        (TEXT, "Without JavaScript the pump map is a list.", None),
        (TEXT, "Centrifugal pumps move water by spinning.", None),
        (TEXT, "Pumps ship within two days.", None),
        (TEXT, "Model P-90 P-100 replaces it.", None),
        (
            TEXT,
            "Search the catalogue P-100 Type a pump model Find pumps Reset filters Help "
            "Rotary Gear pumps Vane pumps Describe the leak",
            None,
        ),
        (TEXT, "Inlet Outlet", None),
    ]


def test_html_and_markdown_keep_a_block_of_one_letter_or_digit_but_not_a_stray_glyph(tmp_path: Path) -> None:
    page = tmp_path / "answers.html"
    page.write_text(
        "<h1>Answers</h1><p>Question 1:</p><p>B</p><p>|</p><div>5<p>Question 2 was void.</p></div>"
    )
    notes = tmp_path / "answers.md"
    notes.write_text("# Answers\n\nQuestion 1:\n\nB\n\n*\n\nQuestion 2:\n\n5\n")

    assert all_text(parse(page)) == "Answers Question 1: B 5 Question 2 was void."
    assert all_text(parse(notes)) == "Answers Question 1: B Question 2: 5"


def test_markdown_keeps_the_text_of_its_raw_html_details(tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text(
        "# FAQ\n\n<details>\n<summary>Does it run offline?</summary>\n\n"
        "Yes, once the model is cached.\n\n</details>\n"
    )

    assert all_text(parse(path)) == "FAQ Does it run offline? Yes, once the model is cached."


def test_an_inline_svg_title_is_its_alternative_text_not_the_page_title(tmp_path: Path) -> None:
    path = tmp_path / "manual.html"
    path.write_text(
        '<svg><title>Arrow icon</title><text x="1">Next</text></svg><h1>Pump manual</h1><p>Oil it weekly.</p>'
    )

    parsed = parse(path)

    assert parsed.title == "Pump manual"  # the page's <head> has no title of its own
    assert all_text(parsed) == "Arrow icon Next Pump manual Oil it weekly."


def test_html_is_read_in_its_declared_charset(tmp_path: Path) -> None:
    path = tmp_path / "legacy.htm"
    path.write_bytes(
        '<meta charset="windows-1252"><p>Caf\u00e9 \u201cdeluxe\u201d costs 5\u20ac.</p>'.encode("cp1252")
    )

    assert all_text(parse(path)) == "Caf\u00e9 \u201cdeluxe\u201d costs 5\u20ac."


def test_html_whose_meta_claims_utf16_is_read_as_the_ascii_compatible_text_it_is(tmp_path: Path) -> None:
    """Taken at its word, the <meta> turned the page into CJK characters; a real UTF-16 file has a BOM."""
    page = '<html><head><meta charset="utf-16"></head><body><p>Caf\u00e9s need oil weekly.</p></body></html>'
    claimed = tmp_path / "claimed.html"
    claimed.write_bytes(page.encode("utf-8"))
    real = tmp_path / "real.html"
    real.write_bytes(page.encode("utf-16"))

    assert all_text(parse(claimed)) == all_text(parse(real)) == "Caf\u00e9s need oil weekly."


def test_xhtml_that_opens_with_an_xml_declaration_is_read(tmp_path: Path) -> None:
    path = tmp_path / "notes.xhtml.html"
    path.write_bytes(
        '<?xml version="1.0" encoding="iso-8859-1"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>Notes</title></head><body><h1>Caf\u00e9</h1><p>Open every day.</p></body></html>".encode(
            "latin-1"
        )
    )

    document = parse(path)

    assert document.title == "Notes"
    assert kinds(document) == [(HEADING, "Caf\u00e9", 1), (TEXT, "Open every day.", None)]


def test_html_that_is_not_in_its_declared_charset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lying.html"
    path.write_bytes('<meta charset="utf-8"><p>Caf\u00e9 cr\u00e8me</p>'.encode("latin-1"))

    with pytest.raises(ParseError, match=r"lying\.html: text is not valid utf-8"):
        parse(path)


# -------------------------------------------------------------------------- formats: office ----


def test_docx_heading_styles_give_levels_and_core_title(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Annual Report"
    document.sections[0].header.paragraphs[0].text = "Company confidential"
    document.sections[0].footer.paragraphs[0].text = "Printed copy"
    document.add_heading("Summary", level=1)
    document.add_paragraph("Revenue grew in every region this year.")
    document.add_heading("Regions", level=2)
    document.add_paragraph("north", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["region", "growth", "north", "12%"], strict=True):
        cell.text = text
    document.add_heading("Method notes", level=3)
    path = tmp_path / "report.docx"
    document.save(path)

    parsed = parse(path)

    assert parsed.title == "Annual Report"
    assert kinds(parsed) == [
        (HEADING, "Summary", 1),
        (TEXT, "Revenue grew in every region this year.", None),
        (HEADING, "Regions", 2),
        (LIST_ITEM, "north", None),
        (TABLE, "region | growth\nnorth | 12%", None),
        (HEADING, "Method notes", 3),
    ]
    assert "confidential" not in all_text(parsed)  # page header and footer are furniture
    assert all(element.page is None for element in parsed.elements)


WORDML = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)


def _wordml(xml: str) -> BaseOxmlElement:
    """An element of a Word document's body, written without its namespace declarations."""
    tag_end = xml.index(">")
    return parse_xml(f"{xml[:tag_end]} {WORDML}{xml[tag_end:]}")


def test_docx_keeps_text_in_content_controls_tracked_insertions_fields_and_text_boxes(tmp_path: Path) -> None:
    """Word shows all of it; python-docx, under unstructured, reads only runs and hyperlinks directly
    in a paragraph and paragraphs directly in the body. A tracked deletion is not shown, and stays out."""
    document = docx.Document()
    document.add_heading("Service report", level=1)
    document.element.body.insert(
        1,
        _wordml(
            '<w:sdt><w:sdtPr><w:alias w:val="Customer"/></w:sdtPr><w:sdtContent><w:p><w:r>'
            "<w:t>Customer: Harbor Pumps Ltd</w:t></w:r></w:p></w:sdtContent></w:sdt>"
        ),
    )
    changed = document.add_paragraph("The seal was ")._p
    changed.append(_wordml('<w:del w:id="1" w:author="a"><w:r><w:delText>repaired</w:delText></w:r></w:del>'))
    changed.append(_wordml('<w:ins w:id="2" w:author="a"><w:r><w:t>replaced</w:t></w:r></w:ins>'))
    changed.append(_wordml('<w:smartTag w:element="place"><w:r><w:t> in Zurich</w:t></w:r></w:smartTag>'))
    dated = document.add_paragraph("Inspected on ")._p
    dated.append(_wordml('<w:fldSimple w:instr="DATE"><w:r><w:t>3 May</w:t></w:r></w:fldSimple>'))
    boxed = document.add_paragraph("See the note beside this paragraph.")._p
    text_box = "<w:txbxContent><w:p><w:r><w:t>Torque the bolts to 40 Nm.</w:t></w:r></w:p></w:txbxContent>"
    boxed.append(
        _wordml(
            f'<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:txbx>{text_box}'
            f"</wps:txbx></w:drawing></mc:Choice><mc:Fallback><w:pict><v:textbox>{text_box}"
            "</v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r>"
        )
    )
    document.add_paragraph("Signed off.")
    path = tmp_path / "report.docx"
    document.save(path)

    assert [text for _, text, _ in kinds(parse(path))] == [
        "Service report",
        "Customer: Harbor Pumps Ltd",
        "The seal was replaced in Zurich",
        "Inspected on 3 May",
        "See the note beside this paragraph.",
        "Torque the bolts to 40 Nm.",  # once: Word's fallback copy of the text box is not read
        "Signed off.",
    ]


_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _with_parts(path: Path, parts: list[tuple[str, str, str, bytes]]) -> None:
    """Add parts (relationship id, relationship type, member under word/, content type, data) to the
    package at `path`, each related from the document part and declared as Word relates and declares it."""
    with zipfile.ZipFile(path) as package:
        members = {name: package.read(name) for name in package.namelist()}
    rels = members["word/_rels/document.xml.rels"].decode()
    types = members["[Content_Types].xml"].decode()
    for identifier, kind, name, content_type, data in parts:
        members[f"word/{name}"] = data
        rels = rels.replace(
            "</Relationships>",
            f'<Relationship Id="{identifier}" Type="{_RELATIONSHIPS}/{kind}" Target="{name}"/></Relationships>',
        )
        types = types.replace(
            "</Types>", f'<Override PartName="/word/{name}" ContentType="{content_type}"/></Types>'
        )
    members["word/_rels/document.xml.rels"] = rels.encode()
    members["[Content_Types].xml"] = types.encode()
    with zipfile.ZipFile(path, "w") as package:
        for name, data in members.items():
            package.writestr(name, data)


def _with_notes_part(path: Path, kind: str, notes: str) -> None:
    """Add word/{kind}s.xml (kind: footnote or endnote) holding `notes`, related as Word relates it."""
    content_type = f"application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"
    data = f"<w:{kind}s {WORDML}>{notes}</w:{kind}s>".encode()
    _with_parts(path, [(f"rIdNotes{kind}", f"{kind}s", f"{kind}s.xml", content_type, data)])


def test_docx_notes_follow_the_paragraph_that_cites_them(tmp_path: Path) -> None:
    """Footnotes and endnotes live in parts of their own, which nothing read; Word's separator lines
    are notes too, with no text, and a link in a note points into the notes' part."""
    document = docx.Document()
    document.add_heading("Seals", level=1)
    document.add_paragraph("Replace the seal yearly.")._p.append(
        _wordml('<w:r><w:footnoteReference w:id="1"/></w:r>')
    )
    document.add_heading("Bearings", level=1)
    document.add_paragraph("Grease the bearings monthly.")._p.append(
        _wordml('<w:r><w:endnoteReference w:id="2"/></w:r>')
    )
    document.add_paragraph("Check the oil.")
    path = tmp_path / "manual.docx"
    document.save(path)
    separator = '<w:{0} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{0}>'
    _with_notes_part(
        path,
        "footnote",
        separator.format("footnote") + '<w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r>'
        "<w:r><w:t>In dusty sites, twice a year: </w:t>"
        '</w:r><w:hyperlink r:id="rId99" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships"><w:r><w:t>see the dust guide</w:t></w:r></w:hyperlink></w:p></w:footnote>',
    )
    _with_notes_part(
        path,
        "endnote",
        separator.format("endnote")
        + '<w:endnote w:id="2"><w:p><w:r><w:t>Use lithium grease.</w:t></w:r></w:p></w:endnote>',
    )

    assert [text for _, text, _ in kinds(parse(path))] == [
        "Seals",
        "Replace the seal yearly.",
        "In dusty sites, twice a year: see the dust guide",
        "Bearings",
        "Grease the bearings monthly.",
        "Use lithium grease.",
        "Check the oil.",
    ]


def test_docx_with_a_broken_notes_part_keeps_its_body_and_names_the_part(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing else reads the notes part, so it does not fail the document; a broken body does."""
    document = docx.Document()
    document.add_paragraph("Replace the seal yearly.")._p.append(
        _wordml('<w:r><w:footnoteReference w:id="1"/></w:r>')
    )
    path = tmp_path / "manual.docx"
    document.save(path)
    _with_notes_part(path, "footnote", '<w:footnote w:id="1"><w:p>')  # cut off

    assert all_text(parse(path)) == "Replace the seal yearly."
    assert "manual.docx: its notes part word/footnotes.xml is not well-formed XML" in caplog.text
    with zipfile.ZipFile(path) as package:
        members = {name: package.read(name) for name in package.namelist()}
    broken = tmp_path / "broken.docx"
    with zipfile.ZipFile(broken, "w") as package:
        for name, data in members.items():
            package.writestr(name, data[:-40] if name == "word/document.xml" else data)
    with pytest.raises(
        ParseError, match=r"broken\.docx: cannot parse DOCX: its part word/document\.xml is not"
    ):
        parse(broken)


_WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


def _alt_chunk(identifier: str) -> BaseOxmlElement:
    return _wordml(f'<w:altChunk xmlns:r="{_RELATIONSHIPS}" r:id="{identifier}"></w:altChunk>')


def _docx_bytes(document: docx.document.Document) -> bytes:
    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


def test_docx_reads_chunks_imported_in_other_formats_in_their_place(tmp_path: Path) -> None:
    """Web editors and mail merges put HTML, plain text, a saved web page (MHT) or a whole .docx into a
    document as w:altChunk, which Word converts where it stands and python-docx skips: each is read
    as a file of its format is, headings and tables included, in its place."""
    imported = docx.Document()
    imported.add_heading("Maintenance", level=2)
    imported.add_paragraph("Grease the bearings monthly.")
    web_page = EmailMessage()
    web_page["Subject"] = "Service"
    web_page.set_content("<html><body><p>Call service at 555-0100.</p></body></html>", subtype="html")
    web_page.make_related()
    document = docx.Document()
    document.add_heading("Pump manual", level=1)
    document.add_paragraph("Read this first.")
    for identifier in ("rIdHtml", "rIdText", "rIdDocx", "rIdMht"):
        document.element.body.insert(len(document.element.body) - 1, _alt_chunk(identifier))  # sectPr last
    document.add_paragraph("Signed off.")
    path = tmp_path / "manual.docx"
    document.save(path)
    page = (
        "<html><head><title>Installing</title></head><body><h2>Installation</h2><p>Bolt the pump to a "
        "level base.</p><ul><li>Check the seals.</li></ul><table><tr><td>bolt</td><td>M12</td></tr>"
        "</table></body></html>"
    )
    _with_parts(
        path,
        [
            ("rIdHtml", "aFChunk", "afchunk1.htm", "text/html", page.encode()),
            ("rIdText", "aFChunk", "afchunk2.txt", "text/plain", b"Keep this manual near the pump."),
            ("rIdDocx", "aFChunk", "afchunk3.docx", _WORD_MAIN, _docx_bytes(imported)),
            ("rIdMht", "aFChunk", "afchunk4.mht", "message/rfc822", web_page.as_bytes()),
        ],
    )

    assert kinds(parse(path)) == [
        (HEADING, "Pump manual", 1),
        (TEXT, "Read this first.", None),
        (HEADING, "Installation", 2),
        (TEXT, "Bolt the pump to a level base.", None),
        (LIST_ITEM, "Check the seals.", None),
        (TABLE, "bolt | M12", None),
        (TEXT, "Keep this manual near the pump.", None),
        (HEADING, "Maintenance", 2),
        (TEXT, "Grease the bearings monthly.", None),
        (TEXT, "Call service at 555-0100.", None),
        (TEXT, "Signed off.", None),
    ]
    assert parse(path).title == "Pump manual"  # a chunk's own <title> titles nothing


def test_docx_chunk_in_a_table_cell_is_the_cells_text_and_unreadable_chunks_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cell holds words, not sections. A chunk that cannot be read leaves the rest of the document
    read, as a broken notes part does, and the warning names the chunk and why."""
    document = docx.Document()
    document.add_paragraph("Parts list.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "seal"
    table.cell(0, 1)._tc.append(_alt_chunk("rIdCell"))
    for identifier in ("rIdRtf", "rIdMissing", "rIdBomb", "rIdLatin", "rIdHuge"):
        document.element.body.insert(len(document.element.body) - 1, _alt_chunk(identifier))  # sectPr last
    document.add_paragraph("Signed off.")
    path = tmp_path / "parts.docx"
    document.save(path)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("word/document.xml", bytes(129 * 2**20))
    _with_parts(
        path,
        [
            ("rIdCell", "aFChunk", "afchunk1.htm", "text/html", b"<p>Viton, <b>60 &amp; 80 mm</b></p>"),
            ("rIdRtf", "aFChunk", "afchunk2.rtf", "application/rtf", b"{\\rtf1 Old notes.}"),
            ("rIdBomb", "aFChunk", "afchunk3.docx", _WORD_MAIN, bomb.getvalue()),
            ("rIdLatin", "aFChunk", "afchunk4.txt", "text/plain", b"\x00\x01binary"),
            ("rIdHuge", "aFChunk", "afchunk5.txt", "text/plain", b"word " * (13 * 2**20 + 1)),
        ],
    )

    parsed = parse(path)

    assert kinds(parsed) == [
        (TEXT, "Parts list.", None),
        (TABLE, "seal | Viton, 60 & 80 mm", None),
        (TEXT, "Signed off.", None),
    ]
    assert "parts.docx/word/afchunk2.rtf: an imported chunk of type application/rtf" in caplog.text
    assert "parts.docx: an imported chunk (w:altChunk r:id='rIdMissing') names no part" in caplog.text
    assert "parts.docx/word/afchunk3.docx: an imported chunk that cannot be read" in caplog.text
    assert "over the limit of 128.0 MiB for one part" in caplog.text
    assert "parts.docx/word/afchunk4.txt: an imported chunk that cannot be read" in caplog.text
    assert "afchunk5.txt: file is 65.0 MiB, over the limit of 64.0 MiB for text files" in caplog.text


def test_docx_imported_into_docx_is_read_three_levels_deep(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A package can hold itself, so nesting has a limit; the level past it is named, not followed."""
    data = b""
    for level in range(4, -1, -1):
        document = docx.Document()
        document.add_paragraph(f"Level {level}.")
        if data:
            document.element.body.insert(len(document.element.body) - 1, _alt_chunk("rIdNested"))
        path = tmp_path / f"level{level}.docx"
        document.save(path)
        if data:
            _with_parts(path, [("rIdNested", "aFChunk", "nested.docx", _WORD_MAIN, data)])
        data = path.read_bytes()

    assert all_text(parse(tmp_path / "level0.docx")) == "Level 0. Level 1. Level 2. Level 3."
    nested = "level0.docx/word/nested.docx/word/nested.docx/word/nested.docx/word/nested.docx"
    assert f"{nested}: a .docx imported 4 levels deep, past the limit of 3; left out" in caplog.text


def test_docx_without_title_property_is_titled_by_its_first_top_level_heading(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Preface", level=2)
    document.add_heading("Operations Manual", level=1)
    document.add_paragraph("Read this first.")
    path = tmp_path / "manual.docx"
    document.save(path)

    assert parse(path).title == "Operations Manual"


def test_pptx_slide_titles_are_headings_with_slide_numbers(tmp_path: Path) -> None:
    presentation = pptx.Presentation()
    presentation.core_properties.title = "Quarterly Review"
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Highlights"
    first.placeholders[1].text = "Revenue up\nCosts down"
    first.notes_slide.notes_text_frame.text = "Mention the new region."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Next steps"
    box = second.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
    box.text_frame.text = "Hire two engineers"
    path = tmp_path / "review.pptx"
    presentation.save(path)

    parsed = parse(path)

    assert parsed.title == "Quarterly Review"
    assert [(element.kind, element.text, element.level, element.page) for element in parsed.elements] == [
        (HEADING, "Highlights", 1, 1),
        (TEXT, "Revenue up", None, 1),
        (TEXT, "Costs down", None, 1),
        (TEXT, "Mention the new region.", None, 1),  # speaker notes close their own slide
        (HEADING, "Next steps", 1, 2),
        (TEXT, "Hire two engineers", None, 2),
    ]


def test_a_slide_without_a_title_is_headed_by_its_number_not_filed_under_the_previous_slide(
    tmp_path: Path, minilm_path: Path
) -> None:
    """A slide with no title (none on its layout, or its title placeholder left empty) had no heading,
    so its words went into the previous slide's section; and a title placed below a text box left the
    box's words there too."""
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: no title placeholder
    first.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = "Agenda items"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Budget"
    second.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = "Spend less"
    third = presentation.slides.add_slide(presentation.slide_layouts[5])  # its title left empty
    third.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = "Hire more"
    fourth = presentation.slides.add_slide(presentation.slide_layouts[5])
    fourth.shapes.title.text = "Risks"
    fourth.shapes.title.top = Inches(6)
    fourth.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1)).text_frame.text = "Late parts"
    path = tmp_path / "plan.pptx"
    presentation.save(path)

    parsed = parse(path)

    assert parsed.title == "Budget"  # the first slide title, not the "Slide 1" standing in for none
    assert [(element.kind, element.text, element.level, element.page) for element in parsed.elements] == [
        (HEADING, "Slide 1", 1, 1),
        (TEXT, "Agenda items", None, 1),
        (HEADING, "Budget", 1, 2),
        (TEXT, "Spend less", None, 2),
        (HEADING, "Slide 3", 1, 3),
        (TEXT, "Hire more", None, 3),
        (HEADING, "Risks", 1, 4),  # the slide's title opens it, wherever it is placed
        (TEXT, "Late parts", None, 4),
    ]
    tokenizer = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tokenizer.no_padding()
    sections = build_sections(
        parsed,
        count_tokens=lambda texts: [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))],
        max_tokens=12,  # room for one slide a section (10 tokens), not the deck (17)
        min_tokens=0,
    )
    assert [(section.breadcrumb, section.text, section.page_start) for section in sections] == [
        (("Budget", "Slide 1"), "Slide 1\n\nAgenda items", 1),
        (("Budget",), "Budget\n\nSpend less", 2),
        (("Budget", "Slide 3"), "Slide 3\n\nHire more", 3),
        (("Budget", "Risks"), "Risks\n\nLate parts", 4),
    ]


def test_a_deck_without_any_title_is_titled_by_its_file_name(tmp_path: Path) -> None:
    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = "Loose notes"
    path = tmp_path / "scratch.pptx"
    presentation.save(path)

    parsed = parse(path)

    assert parsed.title == "scratch"
    assert kinds(parsed) == [(HEADING, "Slide 1", 1), (TEXT, "Loose notes", None)]


SMARTART_DATA = (
    '<dgm:dataModel xmlns:dgm="http://schemas.openxmlformats.org/drawingml/2006/diagram" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><dgm:ptLst>'
    '<dgm:pt modelId="0" type="doc"><dgm:t><a:bodyPr/><a:p><a:endParaRPr/></a:p></dgm:t></dgm:pt>'
    '<dgm:pt modelId="1"><dgm:t><a:bodyPr/><a:p><a:r><a:t>Drain the pump</a:t></a:r></a:p></dgm:t></dgm:pt>'
    '<dgm:pt modelId="2"><dgm:t><a:bodyPr/><a:p><a:r><a:t>Swap the seal</a:t></a:r></a:p></dgm:t></dgm:pt>'
    "</dgm:ptLst></dgm:dataModel>"
)


def _add_smartart(slide: pptx.slide.Slide, top: int) -> None:
    """A SmartArt frame as PowerPoint writes one: its nodes' text in a diagram-data part of its own."""
    part = pptx.opc.package.Part(
        pptx.opc.packuri.PackURI("/ppt/diagrams/data1.xml"),
        "application/vnd.openxmlformats-officedocument.drawingml.diagramData+xml",
        slide.part.package,
        SMARTART_DATA.encode(),
    )
    data_id = slide.part.relate_to(
        part, "http://schemas.openxmlformats.org/officeDocument/2006/relationships/diagramData"
    )
    slide.shapes._spTree.append(
        pptx.oxml.parse_xml(
            '<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
            'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<p:nvGraphicFramePr><p:cNvPr id="90" name="Diagram"/><p:cNvGraphicFramePr/><p:nvPr/>'
            f'</p:nvGraphicFramePr><p:xfrm><a:off x="914400" y="{top}"/><a:ext cx="4572000" cy="914400"/>'
            "</p:xfrm><a:graphic>"
            '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/diagram">'
            '<dgm:relIds xmlns:dgm="http://schemas.openxmlformats.org/drawingml/2006/diagram" '
            f'r:dm="{data_id}" r:lo="" r:qs="" r:cs=""/></a:graphicData></a:graphic></p:graphicFrame>'
        )
    )


def test_pptx_keeps_charts_diagrams_and_text_that_sticks_out_past_the_slide_edge(tmp_path: Path) -> None:
    """unstructured dropped charts and SmartArt with their words, and a text box whose left edge is a
    hair past the slide's (or one parked wholly left of it, which an author still sees)."""
    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "Pump sales"
    slide.shapes.add_textbox(-Emu(20000), Inches(2), Inches(4), Inches(1)).text_frame.text = "Sales rose"
    slide.shapes.add_textbox(-Inches(5), Inches(2), Inches(4), Inches(1)).text_frame.text = "Parked"
    data = CategoryChartData()
    data.categories = ["North", "South"]
    data.add_series("Units sold", (3, 5))
    chart = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(3), Inches(5), Inches(2), data
    )
    chart.chart.has_title = True
    chart.chart.chart_title.text_frame.text = "Units by region"
    _add_smartart(slide, Inches(5))
    path = tmp_path / "sales.pptx"
    presentation.save(path)

    assert [(element.kind, element.text, element.page) for element in parse(path).elements] == [
        (HEADING, "Pump sales", 1),
        (TEXT, "Parked", 1),  # shapes are read top to bottom, left to right
        (TEXT, "Sales rose", 1),
        (TEXT, "Units by region\nUnits sold\nNorth, South", 1),
        (TEXT, "Drain the pump\nSwap the seal", 1),
    ]


def test_email_subject_is_the_title_and_body_the_text(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Index rebuild finished"
    message["From"] = "ops@example.com"
    message["To"] = "team@example.com"
    message.set_content("The nightly rebuild finished without errors.\n\nIt took forty minutes.\n")
    path = tmp_path / "rebuild.eml"
    path.write_bytes(bytes(message))

    parsed = parse(path)

    assert parsed.title == "Index rebuild finished"
    assert all_text(parsed) == "The nightly rebuild finished without errors. It took forty minutes."


def test_an_html_email_body_is_read_as_an_html_file_is(tmp_path: Path) -> None:
    """Nested past libxml2's depth, with a <main>, a <details> and a button; and one holding no element."""
    deep = "<div>" * 300 + "<p>The spare key is under the mat.</p>" + "</div>" * 300
    bodies = {
        "deep.eml": f"<html><body>{deep}</body></html>",
        "main.eml": "<html><body><main><p>Inside the main part.</p></main><p>Sent from the depot.</p>"
        "<details><p>Collapsed reply.</p></details><button>Confirm</button></body></html>",
        "empty.eml": "<!-- nothing here -->",
    }
    for name, html in bodies.items():
        message = EmailMessage()
        message["Subject"] = "Depot notes"
        message.set_content("The plain-text part.\n")
        message.add_alternative(html, subtype="html")
        (tmp_path / name).write_bytes(bytes(message))

    assert all_text(parse(tmp_path / "deep.eml")) == "The spare key is under the mat."
    assert parse(tmp_path / "main.eml").title == "Depot notes"
    assert all_text(parse(tmp_path / "main.eml")) == (
        "Inside the main part. Sent from the depot. Collapsed reply. Confirm"
    )
    with pytest.raises(ParseError, match=r"empty\.eml: no extractable text$"):
        parse(tmp_path / "empty.eml")


def test_an_email_keeps_every_part_a_mail_client_shows_inline_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mailing list's footer, a part of its own after the body's alternatives, was lost without a
    word; a forwarded message attached is another document, named in the log."""
    message = EmailMessage()
    message["Subject"] = "Meeting moved"
    message.set_content("The meeting moved to Friday.\n")
    message.add_alternative("<p>The meeting moved to <b>Friday</b>.</p>", subtype="html")
    message.make_mixed()
    footer = EmailMessage()
    footer.set_content("You are subscribed to pumps-list.\n")
    message.attach(footer)
    forwarded = EmailMessage()
    forwarded["Subject"] = "Old thread"
    forwarded.set_content("An older message.\n")
    message.add_attachment(forwarded)
    path = tmp_path / "list.eml"
    path.write_bytes(bytes(message))

    assert all_text(parse(path)) == "The meeting moved to Friday. You are subscribed to pumps-list."
    assert "list.eml: attachments not indexed: message/rfc822" in caplog.text


def test_email_attachments_are_named_in_the_log_not_merged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = EmailMessage()
    message["Subject"] = "Slides attached"
    message.set_content("Here are the slides from today.\n")
    message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="deck.pdf")
    path = tmp_path / "slides.eml"
    path.write_bytes(bytes(message))

    parsed = parse(path)

    assert all_text(parsed) == "Here are the slides from today."
    assert "slides.eml: attachments not indexed: deck.pdf" in caplog.text


@pytest.mark.parametrize(("suffix", "delimiter"), [(".csv", ","), (".tsv", "\t")])
def test_delimited_files_become_one_table_with_header_row(
    tmp_path: Path, suffix: str, delimiter: str
) -> None:
    path = tmp_path / f"cities{suffix}"
    rows = [["city", "country"], ["Zürich", "Schweiz"], ["Köln", "Deutschland"]]
    path.write_bytes("\n".join(delimiter.join(row) for row in rows).encode("latin-1"))

    assert kinds(parse(path)) == [(TABLE, "city | country\nZürich | Schweiz\nKöln | Deutschland", None)]


def test_delimited_files_keep_every_row_and_cell_as_the_file_has_them(tmp_path: Path) -> None:
    """A row longer than the header failed the whole file; a one-column file was split at its spaces
    and padded with cells reading "None"; a semicolon file (Excel where "," is the decimal mark)."""
    files = {
        "ragged.csv": "part,qty\npump,3\nseal,5,order two spares\nvalve\n",
        "list.csv": "Check the oil\nSwap the seal\nTest\n",
        "excel.csv": 'part;price\npump;"1,5"\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    assert kinds(parse(tmp_path / "ragged.csv")) == [
        (TABLE, "part | qty\npump | 3\nseal | 5 | order two spares\nvalve", None)
    ]
    assert kinds(parse(tmp_path / "list.csv")) == [(TABLE, "Check the oil\nSwap the seal\nTest", None)]
    assert kinds(parse(tmp_path / "excel.csv")) == [(TABLE, "part | price\npump | 1,5", None)]


# ----------------------------------------------------------------------------- formats: PDF ----


def test_pdf_headings_levels_pages_and_all_text(tmp_path: Path) -> None:
    parsed = parse(write_pdf(tmp_path / "report.pdf", REPORT_PAGES, title="Design Notes"))

    assert parsed.title == "Design Notes"
    assert [(element.kind, element.text, element.level, element.page) for element in parsed.elements] == (
        REPORT_ELEMENTS
    )


def test_pdf_words_broken_across_lines_are_joined_as_the_document_spells_them(tmp_path: Path) -> None:
    """A line-end hyphen goes where the document spells the joined word elsewhere (more often than
    hyphenated), and stays otherwise, without the space: no word is made up. A soft hyphen always goes."""
    lines = [
        "Each example is short. A long exam-",  # "example" is spelled whole: the hyphen goes
        "ple follows, with a well-",  # "wellknown" never is: a compound
        "known word, a co-",  # "co-operate" is spelled hyphenated too, more often than whole
        "operate that co-operate and cooperate also spell, a para-",  # neither "paragraph" spelling
        "graph, and an op\xad",  # soft hyphen (byte 0xAD in these fonts)
        "tional break.",
    ]
    pdf = write_pdf(tmp_path / "broken.pdf", [paragraph(700, *lines), paragraph(500, "Another co-operate.")])

    text = " ".join(element.text for element in parse(pdf).elements)

    assert "A long example follows, with a well-known word" in text
    assert (
        "a co-operate that co-operate and cooperate also spell, a para-graph, and an optional break." in text
    )
    assert "- " not in text and "\xad" not in text


def test_pdf_ligature_glyphs_are_spelled_out(tmp_path: Path) -> None:
    """A font's "fi" glyph maps to U+FB01, which no query's "fi" matches."""
    pdf = write_pdf(tmp_path / "ligature.pdf", [paragraph(700, "The \xaele lists each \xaeeld.")])

    assert [element.text for element in parse(pdf).elements] == ["The file lists each field."]


def test_pdf_without_title_metadata_is_titled_by_its_top_heading(tmp_path: Path) -> None:
    assert parse(write_pdf(tmp_path / "report.pdf", REPORT_PAGES)).title == "Parsing Long Documents"


@pytest.mark.parametrize("placeholder", ["Microsoft Word - pump-notes.docx", "report.pdf", "Untitled"])
def test_pdf_whose_title_metadata_is_a_file_name_or_untitled_is_titled_by_its_top_heading(
    tmp_path: Path, placeholder: str
) -> None:
    """A converter's placeholder led every breadcrumb, and so went into every embedding."""
    assert (
        parse(write_pdf(tmp_path / "r.pdf", REPORT_PAGES, title=placeholder)).title
        == "Parsing Long Documents"
    )


def test_pdf_keeps_one_off_text_near_the_page_edge(tmp_path: Path) -> None:
    pages = [
        [
            (9, 770, "Draft for review", False),
            *paragraph(600, "The body of the letter is short."),
            (8, 40, "1 A footnote.", False),
        ]
    ]

    parsed = parse(write_pdf(tmp_path / "letter.pdf", pages))

    assert all_text(parsed) == "Draft for review The body of the letter is short. 1 A footnote."


def test_pdf_keeps_chapter_headings_at_page_tops_that_differ_only_in_their_number(tmp_path: Path) -> None:
    """Page-top "Chapter 1", "Chapter 2" sit where running headers do, and differ only in a number,
    but theirs does not move with the page; the footer's "Field manual - 13" on page 3 does, and goes."""
    chapters = {1: "Chapter 1", 3: "Chapter 2", 5: "Chapter 3"}
    pages = [
        [
            (9, 765, f"Page {number} of 6", False),
            *([(11, 745, chapters[number], False)] if number in chapters else []),
            *paragraph(700, f"The pump on page {number} needs oil every week."),
            (9, 30, f"Field manual - {number + 10}", False),
        ]
        for number in range(1, 7)
    ]

    parsed = parse(write_pdf(tmp_path / "manual.pdf", pages))

    assert [(element.kind, element.text, element.page) for element in parsed.elements] == [
        (HEADING, "Chapter 1", 1),
        (TEXT, "The pump on page 1 needs oil every week.", 1),
        (TEXT, "The pump on page 2 needs oil every week.", 2),
        (HEADING, "Chapter 2", 3),
        (TEXT, "The pump on page 3 needs oil every week.", 3),
        (TEXT, "The pump on page 4 needs oil every week.", 4),
        (HEADING, "Chapter 3", 5),
        (TEXT, "The pump on page 5 needs oil every week.", 5),
        (TEXT, "The pump on page 6 needs oil every week.", 6),
    ]


def test_pdf_keeps_a_heading_a_page_even_where_its_number_follows_the_page(tmp_path: Path) -> None:
    """A step a page: "Step 1" tops page 1, "Step 2" page 2, numbered as a running header would be,
    but set as headings are, large and bold."""
    pages = [[(16, 745, f"Step {n}", True), *paragraph(700, f"Turn valve {n} slowly.")] for n in range(1, 4)]

    parsed = parse(write_pdf(tmp_path / "steps.pdf", pages))

    assert kinds(parsed) == [
        item
        for n in range(1, 4)
        for item in [(HEADING, f"Step {n}", 1), (TEXT, f"Turn valve {n} slowly.", None)]
    ]


def test_pdf_keeps_a_heading_whose_words_also_run_as_the_page_header(tmp_path: Path) -> None:
    """The title opens page 1 near its top edge, large and bold; the same words run small above the
    other pages. The running headers go, the title stays."""
    pages = [
        [(20, 745, "Pump Maintenance Guide", True), *paragraph(700, "Pumps need oil every week.")],
        *(
            [(9, 765, "Pump Maintenance Guide", False), (15, 700, topic, True), *paragraph(670, text)]
            for topic, text in [
                ("Seals", "Replace worn seals at once."),
                ("Bearings", "Grease them monthly."),
            ]
        ),
    ]

    parsed = parse(write_pdf(tmp_path / "guide.pdf", pages))

    assert [(element.kind, element.text, element.level, element.page) for element in parsed.elements] == [
        (HEADING, "Pump Maintenance Guide", 1, 1),
        (TEXT, "Pumps need oil every week.", None, 1),
        (HEADING, "Seals", 2, 2),
        (TEXT, "Replace worn seals at once.", None, 2),
        (HEADING, "Bearings", 2, 3),
        (TEXT, "Grease them monthly.", None, 3),
    ]


def test_pdf_of_two_pages_drops_a_footer_whose_number_follows_the_page(tmp_path: Path) -> None:
    """On two pages a running footer is known by standing on both, at one height, in one type."""
    pages = [
        [*paragraph(700, "Pumps need oil every week."), (9, 30, "Field manual - 1", False)],
        [*paragraph(700, "Replace worn seals at once."), (9, 30, "Field manual - 2", False)],
    ]

    parsed = parse(write_pdf(tmp_path / "manual.pdf", pages))

    assert all_text(parsed) == "Pumps need oil every week. Replace worn seals at once."


def test_pdf_of_two_pages_keeps_numbered_lines_at_other_heights_or_set_as_headings(tmp_path: Path) -> None:
    """Numbered like running text, page by page, but a caption sits where its figure ends, and a part
    a page is set as a heading."""
    pages = [
        [
            (14, 750, "Part 1", True),
            *paragraph(700, "Pumps need oil every week."),
            (9, 40, "Figure 1", False),
        ],
        [
            (14, 750, "Part 2", True),
            *paragraph(700, "Replace worn seals at once."),
            (9, 25, "Figure 2", False),
        ],
    ]

    parsed = parse(write_pdf(tmp_path / "manual.pdf", pages))

    assert [(element.kind, element.text, element.page) for element in parsed.elements] == [
        (HEADING, "Part 1", 1),
        (TEXT, "Pumps need oil every week.", 1),
        (TEXT, "Figure 1", 1),
        (HEADING, "Part 2", 2),
        (TEXT, "Replace worn seals at once.", 2),
        (TEXT, "Figure 2", 2),
    ]


def test_pdf_keeps_what_is_filled_in_its_form_fields_and_free_text_comments(tmp_path: Path) -> None:
    """pdfminer draws no annotations, so a filled-in form read as its blank labels. A checkbox's state,
    a hidden field and a pop-up note are no words a reader sees."""
    stream = b"BT /F1 11 Tf 72 700 Td (Customer name:) Tj ET BT /F1 11 Tf 72 660 Td (Pump types:) Tj ET"
    widget = b"/Type /Annot /Subtype /Widget /Rect [%d %d %d %d]"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> /Annots [6 0 R 7 0 R 8 0 R 9 0 R 11 0 R 12 0 R] >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< %s /FT /Tx /T (name) /V (Harbor Pumps Ltd) >>" % (widget % (200, 695, 400, 712)),
        b"<< %s /FT /Btn /T (urgent) /V /Yes >>" % (widget % (200, 620, 212, 632)),
        b"<< %s /FT /Tx /T (internal) /V (do not show) /F 2 >>" % (widget % (200, 600, 400, 612)),
        b"<< %s /Parent 10 0 R >>" % (widget % (200, 655, 400, 672)),  # a kid of a multi-select list
        b"<< /FT /Ch /Ff 2097152 /T (types) /V [(Gear) (Vane)] /Kids [9 0 R] >>",
        b"<< /Type /Annot /Subtype /FreeText /Rect [72 560 300 580] /Contents (Checked by QA) >>",
        b"<< /Type /Annot /Subtype /Text /Rect [72 540 90 558] /Contents (a pop-up note) >>",
    ]
    path = tmp_path / "form.pdf"
    path.write_bytes(pdf_file(objects))

    parsed = parse(path)

    assert [element.text for element in parsed.elements] == [
        "Customer name:",
        "Pump types:",
        "Harbor Pumps Ltd",  # after the page's own text, top to bottom
        "Gear Vane",
        "Checked by QA",
    ]
    assert all(element.kind == TEXT and element.page == 1 for element in parsed.elements[2:])
    only_fields = tmp_path / "only-fields.pdf"  # no glyphs to judge type by: values stay text
    only_fields.write_bytes(
        pdf_file([*objects[:2], objects[2].replace(b"/Contents 4 0 R", b""), *objects[3:]])
    )
    assert [(element.kind, element.text) for element in parse(only_fields).elements] == [
        (TEXT, "Harbor Pumps Ltd"),
        (TEXT, "Gear Vane"),
        (TEXT, "Checked by QA"),
    ]


def _pdf_with_unmapped_font(path: Path, readable: bytes) -> Path:
    """Three glyphs in a CID font with no ToUnicode map (pdfminer writes them as "(cid:42)"), then
    `readable` in Helvetica."""
    stream = b"BT /F1 12 Tf 72 700 Td <002A003B004C> Tj ET" + readable
    path.write_bytes(
        pdf_file(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
                b" /Resources << /Font << /F1 5 0 R /F2 7 0 R >> >> >>",
                b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
                b"<< /Type /Font /Subtype /Type0 /BaseFont /Subset /Encoding /Identity-H"
                b" /DescendantFonts [6 0 R] >>",
                b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Subset"
                b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> >>",
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            ]
        )
    )
    return path


def test_pdf_characters_whose_font_maps_them_to_no_text_are_left_out_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """They were indexed as "(cid:42)(cid:59)(cid:76)"; with nothing else on the page, it is no text."""
    mixed = _pdf_with_unmapped_font(
        tmp_path / "mixed.pdf", b" BT /F2 11 Tf 72 650 Td (The pump needs oil.) Tj ET"
    )
    unreadable = _pdf_with_unmapped_font(tmp_path / "unreadable.pdf", b"")

    assert all_text(parse(mixed)) == "The pump needs oil."
    assert (
        "mixed.pdf: 3 characters on pages 1 are set in fonts that map them to no Unicode text" in caplog.text
    )
    with pytest.raises(
        ParseError, match=r"unreadable\.pdf: no extractable text \(3 characters on 1 pages are set"
    ):
        parse(unreadable)


def test_pdf_set_all_in_one_style_falls_back_to_text_heuristics(tmp_path: Path) -> None:
    pages = [
        [
            (11, 700, "Overview", True),
            (11, 670, "We ship on Fridays", True),
            (11, 640, "The service answers queries in milliseconds.", True),
        ]
    ]

    assert kinds(parse(write_pdf(tmp_path / "memo.pdf", pages))) == [
        (HEADING, "Overview", 1),
        (TEXT, "We ship on Fridays", None),
        (TEXT, "The service answers queries in milliseconds.", None),
    ]


def test_pdf_without_a_text_layer_has_no_extractable_text(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "scan.pdf", [[], []])

    with pytest.raises(ParseError, match=r"scan\.pdf: no extractable text \(2 pages without a text layer"):
        parse(path)


def test_truncated_pdf_is_refused_rather_than_read_in_part(tmp_path: Path) -> None:
    whole = write_pdf(tmp_path / "whole.pdf", REPORT_PAGES).read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[: len(whole) * 2 // 3])

    with pytest.raises(ParseError, match=r"cut\.pdf: PDF is truncated"):
        parse(path)


def test_pdf_locked_with_a_password_is_refused_but_owner_restrictions_are_not(tmp_path: Path) -> None:
    source = write_pdf(tmp_path / "source.pdf", REPORT_PAGES)
    for user_password, name in [("secret", "locked.pdf"), ("", "restricted.pdf")]:
        writer = PdfWriter(clone_from=PdfReader(source))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        writer.write(tmp_path / name)

    with pytest.raises(ParseError, match=r"locked\.pdf: PDF is encrypted and needs a password"):
        parse(tmp_path / "locked.pdf")
    assert len(parse(tmp_path / "restricted.pdf").elements) == len(REPORT_ELEMENTS)


def test_file_that_is_not_a_pdf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("just some words")

    with pytest.raises(ParseError, match=r"fake\.pdf: not a PDF"):
        parse(path)


# ------------------------------------------------------------------------------ other failures ----


def test_unsupported_format_is_its_own_error(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_text("whatever")

    with pytest.raises(UnsupportedFormatError, match=r"data\.xyz: unsupported file type '\.xyz'"):
        parse(path)
    assert issubclass(UnsupportedFormatError, ParseError)
    assert {".txt", ".md", ".html", ".pdf", ".docx", ".pptx", ".eml", ".csv", ".tsv"} <= SUPPORTED_SUFFIXES
    assert ".xyz" not in SUPPORTED_SUFFIXES


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_corrupt_docx_is_a_parse_error_naming_the_file(tmp_path: Path, keep: float) -> None:
    document = docx.Document()
    document.add_paragraph("Some text that will be cut off.")
    document.save(tmp_path / "whole.docx")
    whole = (tmp_path / "whole.docx").read_bytes()
    path = tmp_path / "broken.docx"
    path.write_bytes(whole[: int(len(whole) * keep)] or b"not a zip archive at all")

    with pytest.raises(ParseError, match=r"broken\.docx: .*DOCX"):
        parse(path)


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"gone\.txt: cannot read: No such file"):
        parse(tmp_path / "gone.txt")


def test_parse_runs_in_a_worker_process_and_its_errors_come_back(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Workers parse files in parallel.\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01\x02")

    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(parse, good).result().elements[0].text == "Workers parse files in parallel."
        with pytest.raises(ParseError, match=r"bad\.txt: contains NUL bytes"):
            pool.submit(parse, bad).result()
    assert pickle.loads(pickle.dumps(parse)) is parse


# ----------------------------------------------------------------------------------- offline ----


@pytest.mark.skipif(spacy.util.is_package("en_core_web_sm"), reason="the real spaCy model is installed")
def test_offline_fallback_replaces_the_missing_spacy_model_once() -> None:
    assert nlp_backend() == "fallback"
    assert unstructured_nlp._get_nlp() is unstructured_nlp._get_nlp()  # built once, not per call
    assert unstructured_nlp.pos_tag("It stores vectors.")[1] == ("stores", "VBZ")
    assert unstructured_nlp.sent_tokenize("One sentence. Another one.") == ["One sentence.", "Another one."]


NETWORK_GUARD = """
import socket, sys
from pathlib import Path

attempts = []

def refuse(*args, **kwargs):
    attempts.append(args)  # recorded, because unstructured's telemetry swallows every exception
    raise OSError("network access refused by the test")

socket.socket.connect = socket.getaddrinfo = socket.create_connection = refuse
from ingest.parse import parse  # imports unstructured, whose import is where the telemetry ping sits

for name in sys.argv[1:]:
    print(name, len(parse(Path(name)).elements))
print("network-attempts", len(attempts))
"""


def test_a_fresh_process_parses_without_network_telemetry_or_banner(tmp_path: Path) -> None:
    """First use in a new process is when unstructured would download its model and ping home."""
    text = tmp_path / "plain.txt"
    text.write_text("Offline parsing\n\nNothing here needs the internet.\n")
    pdf = write_pdf(tmp_path / "report.pdf", REPORT_PAGES)
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE")
    }
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    run = subprocess.run(
        [sys.executable, "-c", NETWORK_GUARD, str(text), str(pdf)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        str(text),
        "2",
        str(pdf),
        str(len(REPORT_ELEMENTS)),
        "network-attempts",
        "0",
    ]
    assert "Unstructured" not in run.stdout + run.stderr  # no usage banner
