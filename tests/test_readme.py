"""The README says what the code does: its commands parse, its flags, settings, defaults, HTTP routes and
store layout are the code's own, so renaming or adding one fails here instead of misleading a reader."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ragkit.cli import main
from ragkit.config import ENVIRONMENT_VARIABLES
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS = set(ENVIRONMENT_VARIABLES) | set(LLM_ENVIRONMENT_VARIABLES)


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [block.strip() for block in blocks]


def section(title: str) -> str:
    """The README text under the heading `title`, up to the next heading of its level or above."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {re.escape(title)}", line))
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    body, fenced = [], False
    for line in lines[start + 1 :]:
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        body.append(line)
    return "\n".join(body)


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_quickstart_installs_then_ingests_the_shipped_samples_and_searches():
    quickstart = readme_commands()[0]
    assert quickstart.startswith("pip install")
    assert "ragkit ingest samples" in quickstart and "ragkit search" in quickstart
    assert any((ROOT / "samples").iterdir())


def test_every_setting_is_documented_in_the_readme_and_the_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    configuration = section("Configuration")
    for name in SETTINGS:
        assert f"`{name}`" in configuration and name in help_text


@pytest.fixture(scope="module")
def samples_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The samples ingested as the README's quickstart does, from a relative path: (working dir, store)."""
    import os
    import shutil

    import ragkit

    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "samples", root / "samples")
    before = Path.cwd()
    os.chdir(root)
    try:
        with ragkit.open("demo", store="ragkit-store", model="minilm") as kit:
            assert kit.ingest([Path("samples")], workers=0).ok
    finally:
        os.chdir(before)
    yield root, root / "ragkit-store"


def test_the_store_folder_holds_what_the_readme_lists(samples_store: tuple[Path, Path]):
    _, store = samples_store
    [block] = [b for b in re.findall(r"```\n(DIR/.*?)```", README, flags=re.S)]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines()}
    found = {f"DIR/{path.name}" for path in store.iterdir()} - {"DIR/collections"}
    found |= {f"DIR/collections/NAME/{path.name}" for path in (store / "collections" / "demo").iterdir()}
    assert found == listed


def test_a_source_filter_takes_the_absolute_path_that_hits_show(
    samples_store: tuple[Path, Path], capsys, monkeypatch: pytest.MonkeyPatch
):
    from ragkit.commands.search import FILTER_HELP

    root, store = samples_store
    monkeypatch.chdir(root)
    search = [
        "search",
        "tomatoes",
        "--store",
        str(store),
        "--collection",
        "demo",
        "--mode",
        "sparse",
        "--json",
    ]

    def sources(*filters: str) -> list[str]:
        assert main([*search, *[f"--filter={spec}" for spec in filters]]) == 0
        return [hit["metadata"]["source"] for hit in json.loads(capsys.readouterr().out)["hits"]]

    absolute = str((root / "samples" / "gardening.txt").resolve())
    assert absolute in sources()
    assert sources(f"source={absolute}") == [absolute]
    assert sources("source=samples/gardening.txt") == []  # the path as given to ingest is not stored
    assert "source (the file's absolute path" in FILTER_HELP
    assert '{"source": "/' in section("Using ragkit in a RAG application")


@pytest.mark.parametrize("value", ["abc", "1.5", "0"])
def test_a_max_upload_setting_that_is_not_a_whole_number_of_mib_is_refused_naming_it(
    value: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("RAGKIT_API_KEY", raising=False)
    monkeypatch.setenv("RAGKIT_MAX_UPLOAD_MB", value)
    assert main(["serve", "--store", str(tmp_path / "store")]) == 2
    error = capsys.readouterr().err
    assert "RAGKIT_MAX_UPLOAD_MB" in error and value in error and "Traceback" not in error
    assert not (tmp_path / "store").exists()  # refused before anything is opened


class _RecordingQdrant:
    """A loopback HTTP server standing where a Qdrant server would, recording the api-key headers sent
    and refusing every request with 403, as a server with another key does."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        keys = self.keys

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                keys.append(self.headers.get("api-key"))
                body = b'{"status": {"error": "Invalid api-key"}}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _refuse

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_eval_sends_a_servers_api_key_from_the_environment_like_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    dataset = tmp_path / "dataset"
    (dataset / "qrels").mkdir(parents=True)
    (dataset / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "Water tomatoes."}\n')
    (dataset / "queries.jsonl").write_text('{"_id": "q1", "text": "watering"}\n')
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    monkeypatch.setenv("RAGKIT_QDRANT_API_KEY", "key-from-the-environment")
    server = _RecordingQdrant()
    try:
        assert main(["eval", str(dataset), "--model", "minilm", "--url", server.url]) == 2
    finally:
        server.close()
    assert server.keys and set(server.keys) == {"key-from-the-environment"}, server.keys
    assert "ragkit: error" in capsys.readouterr().err
