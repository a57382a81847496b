"""Hostile input: mutated and malicious documents of every format end ingested, skipped or failed, with
an error naming the file and the cause; none hangs the job, crashes it or loses another file's result.

A small sample of what `python -m bench.fuzz` runs by the thousand.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import psutil
import pytest

import ragkit
from ingest.isolation import prepare_isolated
from ingest.parse import SUPPORTED_SUFFIXES, parse
from ingest.parse.limits import MAX_PACKAGE_MEMBER_BYTES
from ingest.prepare import Job, Prepared
from ragkit.errors import ParseError
from tests import hostile

GOOD = "# Garden guide\n\n## Tomatoes\n\n" + hostile.PROSE + "\n"


def ingest(store: Path, paths: list[Path], **options: object) -> ragkit.IngestReport:
    with ragkit.open("docs", store=store, model="minilm", device="cpu") as kit:
        return kit.ingest(paths, **options)


def assert_every_file_accounted_for(report: ragkit.IngestReport, paths: list[Path]) -> None:
    failed = {Path(entry["path"]): entry["error"] for entry in report.documents_failed}
    skipped = {Path(entry["path"]) for entry in report.documents_skipped}
    assert report.documents_seen == len(paths)
    assert report.documents_ingested + len(failed) + len(skipped) == len(paths)
    for path, error in failed.items():
        assert error.startswith(f"{path}: ") and len(error) > len(f"{path}: ") + 10, error
        assert "Traceback" not in error


def test_every_format_mutated_ends_ingested_skipped_or_failed_naming_the_file(tmp_path: Path) -> None:
    paths = hostile.write(tmp_path / "docs", hostile.mutated(4 * len(SUPPORTED_SUFFIXES), seed=7))
    paths += hostile.write(tmp_path / "docs", hostile.built_to_hurt())
    paths += hostile.write(tmp_path / "docs", [("good.md", GOOD.encode())])

    report = ingest(tmp_path / "store", paths, workers=2, parse_timeout=60)

    assert_every_file_accounted_for(report, paths)
    assert report.documents_ingested >= 2  # the good file, and mutations that leave text to read
    assert not any(entry["path"].endswith("good.md") for entry in report.documents_failed)
    errors = {Path(entry["path"]).name: entry["error"] for entry in report.documents_failed}
    assert "decompression bomb" in errors["zip-bomb.docx"]
    assert "decompression bomb" in errors["zip-bomb.pptx"]
    assert "decompression bomb" in errors["stream-bomb.pdf"]
    assert "cross-reference table is broken" in errors["broken-xref.pdf"]


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(
        hostile.zip_bomb(hostile.SEEDS[".docx"](), "word/document.xml", MAX_PACKAGE_MEMBER_BYTES + 2**20)
    )
    with pytest.raises(
        ParseError, match=r"part 'word/document.xml' declares 129.0 MiB, over the limit of 128.0 MiB"
    ):
        parse(bomb)


def test_a_zip_member_that_holds_more_than_it_declares_is_corrupt(tmp_path: Path) -> None:
    bomb = hostile.zip_bomb(hostile.SEEDS[".docx"](), "word/document.xml", 8 * 2**20)
    lying = tmp_path / "lying.docx"
    lying.write_bytes(hostile.understate_member(bomb, "word/document.xml", 4096))
    with pytest.raises(ParseError, match=r"lying.docx: corrupt or truncated DOCX file"):
        parse(lying)


def test_html_nested_50000_deep_keeps_the_text_at_the_bottom(tmp_path: Path) -> None:
    page = tmp_path / "deep.html"
    page.write_bytes(hostile.deep_html(50_000, "The treasure is buried under the old oak tree."))
    assert [element.text for element in parse(page).elements] == [
        "The treasure is buried under the old oak tree."
    ]


def test_flattened_html_keeps_the_structure_above_the_limit_and_no_script_text(tmp_path: Path) -> None:
    page = tmp_path / "deep.html"
    deep = "<div>" * 300 + "<script>var hidden = 1;</script><p>Bottom text.</p>" + "</div>" * 300
    page.write_text(f"<html><body><h1>Title</h1><p>First &amp; top.</p>{deep}</body></html>")
    assert [element.text for element in parse(page).elements] == ["Title", "First & top.", "Bottom text."]


def test_flattened_html_keeps_its_blocks_apart_and_its_inline_tags_inside_words(tmp_path: Path) -> None:
    # The tags left out below the limit took the breaks between blocks with them: "FirstSecond".
    page = tmp_path / "deep.html"
    bottom = "<p>First words</p><p>Second words</p><ul><li>one</li><li>two</li></ul>pre<b>fix</b>ed"
    page.write_text("<html><body>" + "<div>" * 300 + bottom + "</div>" * 300 + "</body></html>")
    assert (
        " ".join(element.text for element in parse(page).elements)
        == "First words Second words one two prefixed"
    )


def test_markdown_quoted_500_deep_keeps_the_text_at_the_bottom(tmp_path: Path) -> None:
    # Its HTML is 500 blockquotes deep, past libxml2's 256: the quote came out empty before.
    page = tmp_path / "deep.md"
    page.write_text("# Title\n\n" + "> " * 500 + "The treasure is buried under the old oak tree.\n")
    texts = [element.text for element in parse(page).elements]
    # (Python-Markdown stops nesting quotes somewhere and keeps the rest of the markers as text.)
    assert texts[0] == "Title" and texts[-1].endswith("> The treasure is buried under the old oak tree.")


def test_markdown_listed_500_deep_is_read_as_plain_text_with_every_line(tmp_path: Path) -> None:
    # Python-Markdown recurses once per level and cannot convert it; it failed with a RecursionError.
    page = tmp_path / "deep.md"
    lines = ["  " * level + f"- item {level}" for level in range(500)]
    page.write_text("# Title\n\n" + "\n".join(lines) + "\n")
    text = "\n".join(element.text for element in parse(page).elements)
    assert all(f"item {level}" in text for level in range(500))


def test_one_enormous_line_is_parsed_and_sectioned_whole(tmp_path: Path, minilm_path: Path) -> None:
    line = tmp_path / "line.txt"
    line.write_bytes(hostile.enormous_line(2))
    counter = ragkit.Encoder.from_pretrained(str(minilm_path), device="cpu").token_counter
    [prepared] = prepare_isolated([Job(line, "line", "hash", None)], counter, 256, processes=1, timeout=120)
    assert isinstance(prepared, Prepared), prepared
    assert " ".join(section.text for section in prepared.sections).split() == line.read_text().split()
    assert max(section.tokens for section in prepared.sections) <= 256


def test_a_parse_over_the_time_limit_is_killed_and_the_rest_ingested(tmp_path: Path) -> None:
    slow = tmp_path / "docs" / "a-slow.pdf"
    slow.parent.mkdir()
    slow.write_bytes(hostile.pdf_many_pages(20_000))
    (tmp_path / "docs" / "b-good.md").write_text(GOOD)

    report = ingest(tmp_path / "store", [tmp_path / "docs"], workers=1, parse_timeout=1)

    assert report.documents_ingested == 1
    [failure] = report.documents_failed
    assert failure["path"] == str(slow)
    assert (
        "parsing took longer than the limit of 1 s (--parse-timeout); the parsing process was killed"
        in failure["error"]
    )


def test_a_parsing_process_that_dies_loses_only_its_own_document(tmp_path: Path) -> None:
    slow = tmp_path / "docs" / "a-slow.pdf"
    slow.parent.mkdir()
    slow.write_bytes(hostile.pdf_many_pages(20_000))
    (tmp_path / "docs" / "b-good.md").write_text(GOOD)
    (tmp_path / "docs" / "c-good.md").write_text(GOOD.replace("Tomatoes", "Beans"))
    killed: list[int] = []

    def kill_the_busy_parser() -> None:  # what the kernel's OOM killer would do
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for child in psutil.Process().children():
                with contextlib.suppress(psutil.Error):  # children come and go
                    if "ingest.worker" in " ".join(child.cmdline()) and child.cpu_percent(interval=0.5) > 20:
                        child.kill()
                        killed.append(child.pid)
                        return

    ingest(tmp_path / "warm-up", [tmp_path / "docs" / "b-good.md"])  # a started, idle parsing process
    killer = threading.Thread(target=kill_the_busy_parser)
    killer.start()
    report = ingest(tmp_path / "store", [tmp_path / "docs"], workers=1, parse_timeout=None)
    killer.join()

    assert killed
    assert report.documents_ingested == 2
    [failure] = report.documents_failed
    assert failure["path"] == str(slow)
    assert "the parsing process was killed by SIGKILL" in failure["error"]
