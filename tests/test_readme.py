"""The README says what the code does: its commands parse, its flags, settings, defaults, HTTP routes and
store layout are the code's own, so renaming or adding one fails here instead of misleading a reader."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ragkit.cli import build_parser, main
from ragkit.config import DEFAULT_STORE, ENVIRONMENT_VARIABLES, Settings
from ragkit.encoder import DEFAULT_MODEL
from ragkit.encoder.resolve import ALIASES
from ragkit.llm import DEFAULT_TIMEOUT, LLM_ENVIRONMENT_VARIABLES, OpenAICompatibleLLM

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


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in `text`, split into cells (`\\|` stays inside a cell)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|(\s*-+\s*\|)+", line):
            rows.append([cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows[1:] if rows else rows


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """Each command of `ragkit` ("ingest" ... "store index", "store convert") and its parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}".strip())
        if prefix:
            found[prefix] = parser

    walk(build_parser(), "")
    found.pop("store")
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.option_strings[-1]: action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    }


SEPARATORS = {";", "&&", "||", "|", ">"}


def split_statements(tokens: list[str]) -> list[list[str]]:
    statements: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            statements.append([])
        else:
            statements[-1].append(token)
    return [statement for statement in statements if statement]


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, as argv lists without leading VAR=value assignments; a
    `for NAME in VALUE...; do BODY; done` loop gives its body once per value."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    if tokens[:1] == ["for"]:
        name, values = tokens[1], tokens[3 : tokens.index(";")]
        body = tokens[tokens.index("do") + 1 : len(tokens) - 1 - tokens[::-1].index("done")]
        statements = [
            [word.replace(f"${name}", value) for word in statement]
            for value in values
            for statement in split_statements(body)
        ]
    else:
        statements = split_statements(tokens)
    commands = []
    for argv in statements:
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
            argv = argv[1:]
        if argv:
            commands.append(argv)
    return commands


def readme_lines() -> list[str]:
    """The lines of the README's bash blocks, continuation lines joined."""
    return [line for block in readme_commands() for line in block.replace("\\\n", " ").splitlines()]


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


def test_every_ragkit_variable_the_code_reads_is_a_documented_setting():
    # Settings are read through ragkit.config.env("RAGKIT_..."); any RAGKIT_ name in the code must be one of
    # the documented ones, so a new variable cannot be read without reaching the README and --help.
    named = {
        (name, path.relative_to(ROOT).as_posix())
        for folder in ("ragkit", "ingest")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in re.findall(r"\bRAGKIT_[A-Z0-9_]+\b", path.read_text(encoding="utf-8"))
    }
    undocumented = {(name, path) for name, path in named if name not in SETTINGS}
    assert not undocumented, f"RAGKIT_ names read but not documented: {sorted(undocumented)}"


def test_the_configuration_table_states_the_defaults_the_code_uses():
    from ragkit.server.config import DEFAULT_MAX_UPLOAD_MB, DEFAULT_WORK_DIR

    llm = OpenAICompatibleLLM.from_env(url="http://127.0.0.1:9/v1")
    defaults = {
        "RAGKIT_MODEL": DEFAULT_MODEL,
        "RAGKIT_STORE": f"./{DEFAULT_STORE}",
        "RAGKIT_DEVICE": Settings().device,
        "RAGKIT_COLLECTION": Settings().collection,
        "RAGKIT_LLM_MODEL": llm.model if llm else None,
        "RAGKIT_LLM_TIMEOUT": f"{DEFAULT_TIMEOUT:g}",
        "RAGKIT_WORK_DIR": f"./{DEFAULT_WORK_DIR}",
        "RAGKIT_MAX_UPLOAD_MB": str(DEFAULT_MAX_UPLOAD_MB),
    }
    rows = {cells[0]: cells[1] for cells in table_rows(section("Configuration"))}
    for name, default in defaults.items():
        [row] = [meaning for names, meaning in rows.items() if f"`{name}`" in names]
        assert f"default `{default}`" in row, f"README's {name} row does not give its default `{default}`"
        assert f"{default}" in (ENVIRONMENT_VARIABLES | LLM_ENVIRONMENT_VARIABLES)[name], f"--help: {name}"


def test_every_ragkit_command_in_the_readme_is_accepted_by_the_parser(capsys):
    known = subparsers()
    synopses = [line for line in readme_lines() if line.startswith("ragkit ") and " [" in line]
    assert synopses, "README's Ingest section shows the synopsis of ragkit ingest"
    for synopsis in synopses:
        command = synopsis.split()[1]
        shown = set(re.findall(r"(?<![\w-])--[a-z0-9-]+", synopsis))
        assert shown <= set(options(known[command])), f"{synopsis}: {shown - set(options(known[command]))}"
    commands = [
        argv
        for line in readme_lines()
        if line not in synopses
        for argv in simple_commands(line)
        if argv[0] == "ragkit"
    ]
    assert len(commands) >= 15  # quickstart, search, query, serve, Ray, eval, LoCo, ...
    for argv in commands:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"README: `{shlex.join(argv)}` is refused: {capsys.readouterr().err}")


def documented_flags() -> dict[tuple[str, str], str]:
    """(command, flag) -> the default cell of README's "Command line" table."""
    documented: dict[tuple[str, str], str] = {}
    for flags_cell, commands_cell, default in table_rows(section("Command line")):
        commands = re.findall(
            r"store index|store convert|store list|store delete|ingest|search|query|eval|serve", commands_cell
        )
        assert commands, f"no command in the row of {flags_cell}"
        for flag in re.findall(r"`(--[a-z0-9-]+)", flags_cell):
            for command in commands:
                assert (command, flag) not in documented, f"{command} {flag} is in two rows"
                documented[(command, flag)] = default
    return documented


def test_the_command_line_table_lists_every_flag_of_every_command():
    documented = documented_flags()
    for command, parser in subparsers().items():
        flags = set(options(parser))
        listed = {flag for (name, flag) in documented if name == command}
        assert listed == flags, (
            f"ragkit {command}: flags missing from README's Command line table: {sorted(flags - listed)}; "
            f"listed but not taken: {sorted(listed - flags)}"
        )
    assert "`ragkit -v COMMAND" in section("Command line")  # the one flag before the command
    assert set(options(build_parser())) == {"--verbose"}


def test_the_command_line_table_gives_each_flags_default_and_variable():
    from ragkit.server.config import DEFAULT_INDEX_AFTER, DEFAULT_MAX_UPLOAD_MB, DEFAULT_WORK_DIR

    # Defaults the commands apply themselves, where argparse's default is None.
    applied: dict[tuple[str | None, str], object] = {
        (None, "--collection"): Settings().collection,
        (None, "--store"): f"./{DEFAULT_STORE}",
        (None, "--device"): Settings().device,
        (None, "--model"): DEFAULT_MODEL,
        ("query", "--llm-timeout"): DEFAULT_TIMEOUT,
        ("serve", "--work-dir"): f"./{DEFAULT_WORK_DIR}",
        ("serve", "--max-upload-mb"): DEFAULT_MAX_UPLOAD_MB,
        ("serve", "--index-after"): DEFAULT_INDEX_AFTER,
    }
    for (command, flag), cell in documented_flags().items():
        action = options(subparsers()[command])[flag]
        default = action.default
        if default in (None, False, []):
            default = applied.get((command, flag), applied.get((None, flag)))
            if command == "eval" and flag in {"--collection", "--store"}:
                default = None  # eval names its own collection, in a temporary folder
        if default is not None:
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"`{shown}`" in cell, f"ragkit {command} {flag}: README says {cell!r}, the code {shown!r}"
        in_help = set(re.findall(r"\bRAGKIT_[A-Z_]+", action.help or ""))
        in_readme = set(re.findall(r"\bRAGKIT_[A-Z_]+", cell))
        if flag == "--store":
            in_readme.discard("RAGKIT_QDRANT_URL")  # named as what takes the folder's place
        assert in_readme == in_help, f"ragkit {command} {flag}: README names {in_readme}, --help {in_help}"


def test_the_model_flag_names_every_alias(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for alias in ALIASES:
        assert alias in help_text
        assert f"`{alias}`" in section("Configuration")


def test_the_serve_table_lists_every_route_with_its_fields(tmp_path: Path):
    from fastapi.routing import APIRoute

    from ragkit.server import ServerConfig, create_app
    from ragkit.server.schemas import (
        MAX_TOP_K,
        DeleteResponse,
        HitOut,
        IndexResponse,
        QueryRequest,
        QueryResponse,
        SearchRequest,
    )

    app = create_app(ServerConfig(store=str(tmp_path / "store"), work_dir=tmp_path / "work", model="minilm"))
    routes = {
        (method, re.sub(r"\{\w+\}", "{}", route.path))  # a path parameter's name is the code's own
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    documented: dict[tuple[str, str], str] = {}
    for endpoint, what in table_rows(section("Serve")):
        method = None
        for span in re.findall(r"`([^`]+)`", endpoint):
            words = span.split()
            method = words[0] if len(words) == 2 else method
            documented[(method, re.sub(r"\{\w+\}", "{}", words[-1].split("?")[0]))] = what
    assert set(documented) == routes

    def names(text: str) -> set[str]:
        return set(re.findall(r'["`](\w+)["`]', text))  # "field" or `field`

    search = documented[("POST", "/v1/search")]
    request, response = search.split("→")
    assert names(request) == set(SearchRequest.model_fields)
    assert f'"top_k": 1-{MAX_TOP_K}' in request
    assert names(response) == {"hits"} | set(HitOut.model_fields)
    query = documented[("POST", "/v1/query")]
    assert names(query.split("→")[0]) | set(SearchRequest.model_fields) == set(QueryRequest.model_fields)
    assert names(query.split("→")[1].split("(")[0]) == set(QueryResponse.model_fields)
    assert names(documented[("DELETE", "/v1/documents/{}")]) == set(DeleteResponse.model_fields)
    assert names(documented[("POST", "/v1/index")]) == set(IndexResponse.model_fields)


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


# serve binds 0.0.0.0 with no client keys, so that a serve that let the key through stops at once (refusing
# to serve unprotected) instead of serving for ever.
@pytest.mark.parametrize(
    "command",
    [["search", "tomatoes"], ["ingest", "samples"], ["serve", "--host", "0.0.0.0"], ["store", "index"]],
)
def test_an_api_key_without_a_server_to_send_it_to_is_refused_by_name(
    command: list[str], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    # README: --api-key is "a Qdrant server's key"; given with an embedded store it used to be dropped.
    for name in ("RAGKIT_QDRANT_URL", "RAGKIT_API_KEY", "RAGKIT_API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--store", "store", "--api-key", "a-key-for-no-server"]) == 2
    assert "--api-key is the key of a Qdrant server" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # refused before anything is opened


def test_eval_refuses_an_api_key_without_url_even_with_a_server_in_the_environment(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RAGKIT_QDRANT_URL", "http://127.0.0.1:9")  # eval never reads it
    assert main(["eval", str(tmp_path), "--api-key", "a-key-for-no-server"]) == 2
    assert "pass --url URL, or leave --api-key out" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_it_cannot_bind_before_opening_anything(port: str, tmp_path: Path, capsys):
    # README's Command line table: --port PORT, default 8000. 70000 used to pass argparse, open the store
    # and start loading the model, then end in an OverflowError traceback from the socket's bind.
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--store", str(tmp_path / "store"), "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: {port!r} is not a port number from 1 to 65535" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_serve_refuses_a_host_that_does_not_resolve_before_opening_anything(tmp_path: Path, capsys):
    # uvicorn found it only when binding, after the store had opened, and exited with status 3 (which the
    # README's exit codes do not have) and "Name or service not known", naming no host.
    assert main(["serve", "--host", "not a host!", "--insecure", "--store", str(tmp_path / "store")]) == 2
    assert "--host 'not a host!' does not resolve" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
