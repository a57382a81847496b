"""Same bytes, same sections: whatever the hash seed, the process, or the other files in the job.

Each run is a fresh interpreter (tests/determinism_probe.py) under its own PYTHONHASHSEED, so object
addresses, set and dict layouts all differ from run to run, as they do between a crashed job and
its re-run. Within a run the files go through the pipeline in order in-process and in reverse order
through a spawned parsing worker; in one run also one by one, each as a job of its own.

Besides a small file of every supported format, the corpus holds real LaTeX documents from TeX
Live (LPPL, see tests/fixtures/README.md): a two-column LaTeX News issue, a code listing with line
numbers and a long table, layouts on which pdfminer's grouping of text boxes meets equal distances
and used to break the ties by memory address.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import docx
import pptx
import pytest
from pptx.util import Inches

from ingest.parse import SUPPORTED_SUFFIXES
from tests.test_parse import REPORT_PAGES, write_pdf

FIXTURES = Path(__file__).parent / "fixtures"
REAL_PDFS = ("ltnews14.pdf", "tulm.pdf", "l3prefixes.pdf")  # two columns, code listings, a table
SEEDS = ("1", "2")  # two hash seeds, so that anything that follows a set's order differs


def _write_corpus(folder: Path) -> list[Path]:
    """One file per supported suffix, each with headings, prose, lists and tables where it has them."""
    prose = (
        "Release notes\n\nThe parser now reads every format the same way each time.\n\n"
        "Known limits\n\nScanned pages need OCR, which ragkit does not run.\n"
    )
    markdown = (
        "# Guide\n\nIntro text for the guide.\n\n## Install\n\n- fast mode\n- exact mode\n\n"
        "```python\nprint('hi')\n```\n\n### Limits\n\n| name | tokens |\n|---|---|\n| gte | 8192 |\n"
    )
    html = (
        "<html><head><title>Search API</title></head><body><h1>Endpoints</h1><p>The service answers.</p>"
        "<h2>Query</h2><ul><li>text</li><li>limit</li></ul>"
        "<table><tr><th>field</th><th>type</th></tr><tr><td>limit</td><td>int</td></tr></table></body></html>"
    )
    files = {
        "notes.txt": prose,
        "notes.text": prose,
        "guide.md": markdown,
        "guide.markdown": markdown,
        "page.html": html,
        "page.htm": html,
        "cities.csv": "city,country\nZürich,Schweiz\nKöln,Deutschland\n",
        "cities.tsv": "city\tcountry\nZürich\tSchweiz\nKöln\tDeutschland\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")

    document = docx.Document()
    document.add_heading("Summary", level=1)
    document.add_paragraph("Revenue grew in every region this year.")
    document.add_heading("Regions", level=2)
    document.add_paragraph("north", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["region", "growth", "north", "12%"], strict=True):
        cell.text = text
    document.save(folder / "report.docx")

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Highlights"
    slide.placeholders[1].text = "Revenue up\nCosts down"
    slide.notes_slide.notes_text_frame.text = "Mention the new region."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Next steps"
    second.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame.text = "Hire"
    presentation.save(folder / "review.pptx")

    message = EmailMessage()
    message["Subject"] = "Index rebuild finished"
    message.set_content("The nightly rebuild finished.\n\nIt took forty minutes.\n")
    message.add_alternative("<h1>Rebuild</h1><p>The nightly rebuild finished.</p>", subtype="html")
    (folder / "rebuild.eml").write_bytes(bytes(message))

    write_pdf(folder / "design.pdf", REPORT_PAGES, title="Design Notes")
    for name in REAL_PDFS:
        shutil.copy(FIXTURES / name, folder / name)
    return sorted(folder.iterdir())


def _start_probe(seed: str, tokenizer: Path, files: list[Path], *flags: str) -> subprocess.Popen[str]:
    root = Path(__file__).parent.parent
    environment = {
        **os.environ,
        "PYTHONHASHSEED": seed,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.determinism_probe", str(tokenizer), *flags, *map(str, files)],
        cwd=root,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(probe: subprocess.Popen[str]) -> dict[str, dict[str, str]]:
    stdout, stderr = probe.communicate(timeout=600)
    assert probe.returncode == 0, stderr[-3000:]
    return json.loads(stdout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _write_corpus(tmp_path_factory.mktemp("determinism"))


def test_corpus_covers_every_supported_format(corpus: list[Path]) -> None:
    assert {path.suffix for path in corpus} == SUPPORTED_SUFFIXES


def test_sections_are_the_same_under_every_seed_process_and_job(
    corpus: list[Path], minilm_path: Path
) -> None:
    # Side by side, as they mostly wait on imports; one also parses each file as a job of its own.
    probes = {
        seed: _start_probe(seed, minilm_path, corpus, *(["--alone"] if seed == SEEDS[0] else []))
        for seed in SEEDS
    }
    runs = {
        f"seed {seed} {mode}": digests
        for seed, probe in probes.items()
        for mode, digests in _report(probe).items()
    }

    names = sorted(path.name for path in corpus)
    assert all(sorted(digests) == names for digests in runs.values())
    differing = {
        name: {run: digests[name][:12] for run, digests in runs.items()}
        for name in names
        if len({digests[name] for digests in runs.values()}) > 1
    }
    assert differing == {}, f"sections differ from run to run: {json.dumps(differing, indent=1)}"
