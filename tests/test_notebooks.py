"""The notebooks run top to bottom, offline, with the packaged minilm model, so they never rot.

They are kept without outputs in the repository (a diff should show code, not plots); executing them
here also checks that the cells still show what their text promises.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shlex
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def execute(name: str, monkeypatch: pytest.MonkeyPatch):
    """Run a notebook from its folder, as a reader would, in a fresh kernel that imports this checkout."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = read(name)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return notebook


def text_of(cell) -> str:
    return "".join(
        output.get("text", "") for output in cell.get("outputs", []) if output["output_type"] == "stream"
    )


def images_of(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("name", ["quickstart.ipynb", "long_documents.ipynb"])
def test_notebooks_are_stored_without_outputs(name: str) -> None:
    for cell in read(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip the outputs"


def test_quickstart_ingests_searches_filters_and_plugs_into_both_frameworks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cells = [cell for cell in execute("quickstart.ipynb", monkeypatch).cells if cell.cell_type == "code"]
    outputs = [text_of(cell) for cell in cells]
    assert "3 documents: 3 ingested" in outputs[1]
    assert "3 unchanged" in outputs[2]
    search = outputs[3].splitlines()
    assert "gardening.txt" in search[0]  # the tomato section comes first
    # The text says what the printed scores are: the default hybrid mode's fused rank scores (RRF, at most
    # 0.2, reached by a section first in both lists), not the cosines the text once promised.
    scores = [float(line.split()[0]) for line in search if not line.startswith(" ")]
    assert scores[0] == 0.2 and all(0 < score <= 0.2 for score in scores)
    described = next(
        cell.source for cell in read("quickstart.ipynb").cells if cell.source.startswith("## Search")
    )
    assert "fused rank score" in described and "cosine score" not in described
    assert "qdrant-basics.md" in outputs[4] and "gardening.txt" not in outputs[4]  # one source only
    assert "gardening.txt" not in outputs[5]
    assert "[1]" in outputs[6] and "twice a week" in outputs[6]
    assert "Question: How often should tomatoes be watered?" in outputs[7]
    assert "water them deeply twice a week" in outputs[7]  # the retrieved section reached the prompt
    assert "long-context.html" in outputs[8].splitlines()[0]


def test_long_documents_plots_section_lengths_and_compares_sections_with_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notebook = execute("long_documents.ipynb", monkeypatch)
    assert images_of(notebook) == 2  # the length histogram and the comparison chart
    printed = "\n".join(text_of(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "function sections that fit gte-*-en-v1.5 (8192)" in printed
    table = [line for line in printed.splitlines() if line.strip().startswith(("sections |", "chunks |"))]
    assert len(table) == 2


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement)[0]).lower()


def installed_by(command: str) -> set[str]:
    """The distributions `pip install -e '.[extras]' other...` (from the repository root) brings in by name:
    ragkit's dependencies, those of the extras (recursively), and the other packages named."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted: set[str] = set()

    def add(requirement: str) -> None:
        if _name(requirement) == "ragkit":
            for extra in re.search(r"\[([^\]]+)\]", requirement)[1].split(","):
                for dependency in extras[extra.strip()]:
                    add(dependency)
        else:
            wanted.add(_name(requirement))

    for word in shlex.split(command):
        if word.startswith(".["):
            wanted.update(_name(dependency) for dependency in project["dependencies"])
            add("ragkit" + word[1:])
        elif word != "-e":
            add(word)
    return wanted


@pytest.mark.parametrize("name", ["quickstart.ipynb", "long_documents.ipynb"])
def test_the_install_command_a_notebook_gives_installs_everything_it_imports(name: str) -> None:
    cells = read(name).cells
    prose = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    [command] = re.findall(r"`pip install ([^`]+)`", prose)
    wanted = installed_by(command)
    provided = importlib.metadata.packages_distributions()
    for cell in (cell for cell in cells if cell.cell_type == "code"):
        for node in ast.walk(ast.parse(cell.source)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            modules += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for module in (module.split(".")[0] for module in modules):
                if module in sys.stdlib_module_names or module in {"ragkit", "ingest"}:
                    continue
                assert {_name(d) for d in provided.get(module, [])} & wanted, (
                    f"{name} imports {module}, which `pip install {command}` does not install"
                )
