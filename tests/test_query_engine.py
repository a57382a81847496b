"""The query engine: context assembly, citations, every kind of LLM, and `ragkit query`, on a real corpus."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda
from llama_index.core.llms import MockLLM

import ragkit
from ragkit.cli import main
from ragkit.errors import InputError
from ragkit.llm import LLMError, OpenAICompatibleLLM
from ragkit.query_engine import ELISION, QueryResponse, Source
from tests import corpus

PLANETS = "how do astronomers discover planets around other stars"
TWO_TOPICS = "How are exoplanets detected, and how should kitchen knives be sharpened?"


@pytest.fixture(scope="module")
def kit(ingested):
    return ingested.kit


def tokens(kit, text: str) -> int:
    with_specials, specials = kit.encoder.count_tokens([text, ""])
    return with_specials - specials


def cited(answer: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", answer)]


class ScriptedLLM:
    """Cites the source whose text holds `phrase`, reading the numbers from the prompt as a model would."""

    def __init__(self, phrase: str) -> None:
        self.phrase = phrase
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        for block in prompt.split("\n\n["):
            if self.phrase in block:
                number = re.match(r"\[?(\d+)\]", block)[1]
                return f"By the {self.phrase} [{number}]."
        return "The sources do not say."


# Context assembly


def test_sources_are_the_best_sections_numbered_in_score_order(kit):
    response = kit.query_engine(ScriptedLLM("transit method"), top_k=3).query(PLANETS)
    hits = kit.search(PLANETS, top_k=3)
    assert [s.citation for s in response.sources] == [1, 2, 3]
    assert [s.id for s in response.sources] == [h.id for h in hits]
    assert [s.text for s in response.sources] == [h.text for h in hits]
    first = response.sources[0]
    assert first.source.endswith("astronomy.md") and first.title == "Astronomy notes"
    assert first.breadcrumb[-1] == "Exoplanets" and first.score == hits[0].score
    assert (first.page_start, first.page_end, first.trimmed) == (None, None, False)


def test_duplicate_sections_enter_the_context_once(kit):
    hits = kit.search("espresso grind size", top_k=4)
    assert hits[0].text == hits[1].text  # kitchen.md and kitchen-copy.md
    response = kit.query_engine(top_k=4).query("espresso grind size")
    assert [s.text for s in response.sources] == list(dict.fromkeys(h.text for h in hits))
    assert [s.citation for s in response.sources] == [1, 2]


def test_the_context_stops_at_the_token_budget_trimming_the_last_section(kit):
    # Dense mode: its third hit has a sentence that fits the 60 tokens left (the budget, not the mode, is tested).
    two_whole = kit.query_engine(top_k=2, mode="dense").query(PLANETS).sources
    budget = sum(tokens(kit, f"{s.header}\n{s.text}") for s in two_whole) + 60
    sources = kit.query_engine(top_k=5, context_tokens=budget, mode="dense").query(PLANETS).sources
    assert sources[:2] == two_whole
    assert len(sources) == 3
    assert sources[2].trimmed and ELISION in sources[2].text
    assert sources[2].id == kit.search(PLANETS, top_k=3, mode="dense")[2].id
    prompt_context = "\n\n".join(f"{s.header}\n{s.text}" for s in sources)
    assert tokens(kit, prompt_context) <= budget


def test_a_trimmed_section_keeps_its_most_relevant_whole_sentences(kit):
    question = "Which volcanic rock is so light that it floats on water?"
    source = kit.query_engine(top_k=1, context_tokens=90).query(question).sources[0]
    original = kit.search(question, top_k=1)[0].text
    assert source.trimmed and source.text != original
    assert "Pumice is a volcanic rock so full of gas bubbles that it floats on water." in source.text
    kept = [part.strip() for part in source.text.split(ELISION) if part.strip()]
    assert len(kept) >= 2
    for part in kept:  # every kept run is whole sentences (or lines) of the section, in their original order
        start = original.index(part)
        end = start + len(part)
        assert start == 0 or original[start - 1] == "\n" or original[:start].rstrip()[-1] in ".!?"
        assert end == len(original) or original[end] == "\n" or part[-1] in ".!?"
    assert [original.index(part) for part in kept] == sorted(original.index(part) for part in kept)
    assert tokens(kit, f"{source.header}\n{source.text}") <= 90


# Answers


def test_a_callable_llm_gets_a_grounded_prompt_and_cites_by_number(kit):
    llm = ScriptedLLM("whetstone")
    response = kit.query_engine(llm, top_k=3).query("how should I sharpen a kitchen knife")
    (prompt,) = llm.prompts
    assert "only the numbered sources" in prompt and "[1]" in prompt
    assert prompt.rstrip().endswith("Question: how should I sharpen a kitchen knife\nAnswer:")
    for source in response.sources:
        assert f"{source.header}\n{source.text}" in prompt
    (number,) = cited(response.answer)
    assert "whetstone" in response.sources[number - 1].text
    assert response.answer == str(response)


def test_without_an_llm_the_answer_quotes_sentences_with_their_citations(kit, monkeypatch):
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)
    engine = kit.query_engine(top_k=4)
    assert engine.llm is None
    response = engine.query(TWO_TOPICS)
    quotes = re.findall(r"(.+?) \[(\d+)\](?: |$)", response.answer)
    assert len(quotes) == 3
    for sentence, number in quotes:
        assert sentence in response.sources[int(number) - 1].text
    cited_sections = {response.sources[int(n) - 1].breadcrumb[-1] for _, n in quotes}
    assert cited_sections == {"Exoplanets", "Knife care"}


def test_an_extractive_answer_from_sources_without_sentences_names_them(kit):
    source = Source(1, "id", "a.md", "A", ["A", "Contents"], 2, 3, 0.5, "Contents\nPart one\nPart two")
    answer = kit.query_engine().extract("what is in part one", [source])
    assert answer == "The sources found have no full sentences to quote: [1] A > Contents (a.md, pages 2-3)"


def test_nothing_found_is_said_without_asking_the_llm(kit):
    llm = ScriptedLLM("anything")
    response = kit.query_engine(llm, score_threshold=0.99).query(PLANETS)
    assert response.sources == [] and llm.prompts == []
    assert response.answer == "No section of collection 'corpus' matched the question."


def test_aquery_gives_the_same_response_as_query(kit):
    engine = kit.query_engine(ScriptedLLM("transit method"), top_k=3, context_tokens=200)
    sync, async_ = engine.query(PLANETS), asyncio.run(engine.aquery(PLANETS))
    assert (async_.answer, async_.sources) == (sync.answer, sync.sources)
    assert set(async_.timings) == {"retrieve", "context", "answer", "total"}
    assert async_.timings["total"] >= async_.timings["retrieve"] > 0


def test_a_langchain_chat_model_answers(kit):
    model = FakeListChatModel(responses=["Transit photometry [1].", "Radial velocity [1]."])
    engine = kit.query_engine(model, top_k=2)
    assert engine.query(PLANETS).answer == "Transit photometry [1]."
    assert asyncio.run(engine.aquery(PLANETS)).answer == "Radial velocity [1]."


@pytest.mark.parametrize(
    "wrap",
    [
        lambda model: model.with_retry(),
        lambda model: model.bind(stop=["\n\n"]),
        lambda model: model.with_fallbacks([model]),
        lambda model: model.with_config(tags=["rag"]),
        lambda model: model | StrOutputParser(),
    ],
    ids=["with_retry", "bind", "with_fallbacks", "with_config", "str_output_parser"],
)
def test_a_langchain_model_wrapped_by_langchain_answers(kit, wrap):
    model = FakeListChatModel(responses=["Transit photometry [1].", "Radial velocity [1]."])
    engine = kit.query_engine(wrap(model), top_k=2)
    assert engine.query(PLANETS).answer == "Transit photometry [1]."
    assert asyncio.run(engine.aquery(PLANETS)).answer == "Radial velocity [1]."


def test_a_langchain_runnable_that_does_not_answer_text_is_a_clear_error(kit):
    engine = kit.query_engine(RunnableLambda(lambda prompt: {"answer": prompt}), top_k=1)
    with pytest.raises(LLMError, match=r"returned dict, not text"):
        engine.query(PLANETS)


def test_a_llamaindex_llm_answers(kit):
    engine = kit.query_engine(MockLLM(), top_k=2)  # MockLLM answers with its prompt
    answer = engine.query(PLANETS).answer
    assert answer == engine.prompt(PLANETS, engine.context(PLANETS, kit.search(PLANETS, top_k=2)))
    assert asyncio.run(engine.aquery(PLANETS)).answer == answer


def test_a_budget_too_small_for_the_best_section_says_so_instead_of_nothing_matched(tmp_path):
    # A deep path makes the citation header alone longer than the smallest accepted budget.
    folder = tmp_path / "docs" / "engineering-handbook" / "operations-and-site-reliability" / "runbooks"
    folder.mkdir(parents=True)
    (folder / "api-credential-rotation-procedure.md").write_text(
        "# Administration Guide for the Customer Identity Platform\n\n## Rotating the API Key\n\n"
        "Rotate the API key every ninety days from the admin console. Revoke the old key after rotation.\n"
    )
    question = "how do I rotate the API key?"
    llm = ScriptedLLM("API key")
    with ragkit.open("keys", store=tmp_path / "store", model="minilm") as kit:
        kit.ingest([tmp_path / "docs"], workers=0)
        assert kit.search(question)
        with pytest.raises(InputError) as raised:
            kit.query_engine(llm, context_tokens=64).query(question)
        best = kit.query_engine(context_tokens=3000).query(question).sources[0]
        header = tokens(kit, best.header + "\n")
    message = str(raised.value)
    assert header > 64
    assert message.startswith(f"context_tokens=64 cannot hold the best section found, {best.header}:")
    assert f"its header takes {header} tokens" in message and "raise context_tokens" in message
    assert "matched" not in message and llm.prompts == []


@pytest.mark.parametrize("context_tokens", [0, 10, 2.5, True])
def test_a_useless_context_budget_is_refused(kit, context_tokens):
    with pytest.raises(InputError, match="context_tokens"):
        kit.query_engine(context_tokens=context_tokens)


def test_a_non_llm_is_refused(kit):
    with pytest.raises(InputError, match="llm must be"):
        kit.query_engine(llm=42)


def test_an_empty_question_is_refused(kit):
    with pytest.raises(InputError, match="query is empty"):
        kit.query_engine().query("  ")


# The OpenAI-compatible HTTP path, against a server on loopback


class ChatServer:
    """A tiny OpenAI-compatible server: records requests, answers `reply` with `status`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.reply: object = {
            "choices": [{"message": {"role": "assistant", "content": "Transit method [1]."}}]
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                time.sleep(server.delay)
                payload = json.dumps(server.reply).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # close() waits for every request: a handler still sleeping out `delay` after a client's timeout
        # would otherwise fail to write to the closed socket during the next test, whose captured
        # stderr then opened with the server's traceback (seen in CI).
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server():
    server = ChatServer()
    yield server
    server.close()


def test_the_http_llm_posts_a_chat_completion_and_returns_its_text(kit, server):
    llm = OpenAICompatibleLLM(server.url, model="qwen-7b", api_key="secret")
    engine = kit.query_engine(llm, top_k=2)
    response = engine.query(PLANETS)
    assert response.answer == "Transit method [1]."
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer secret"
    assert request["body"]["model"] == "qwen-7b"
    assert request["body"]["messages"] == [
        {"role": "user", "content": engine.prompt(PLANETS, response.sources)}
    ]
    assert asyncio.run(engine.aquery(PLANETS)).answer == "Transit method [1]."


def test_the_http_llm_is_configured_from_the_environment(kit, server, monkeypatch):
    monkeypatch.setenv("RAGKIT_LLM_URL", server.url + "/")
    monkeypatch.setenv("RAGKIT_LLM_MODEL", "llama3")
    monkeypatch.delenv("RAGKIT_LLM_API_KEY", raising=False)
    assert kit.query_engine(top_k=1).query(PLANETS).answer == "Transit method [1]."
    (request,) = server.requests
    assert (request["path"], request["auth"], request["body"]["model"]) == (
        "/v1/chat/completions",
        None,
        "llama3",
    )


@pytest.mark.parametrize(
    ("status", "reply", "message"),
    [
        (500, {"error": "model not loaded"}, "answered HTTP 500 Internal Server Error: .*model not loaded"),
        (404, {"error": "no such route"}, "answered HTTP 404"),
        (200, {"choices": []}, "not an OpenAI chat completion"),
        (200, {"choices": [{"message": {"content": None}}]}, "returned NoneType, not text"),
    ],
)
def test_http_llm_failures_are_clear_errors(kit, server, status, reply, message):
    server.status, server.reply = status, reply
    engine = kit.query_engine(OpenAICompatibleLLM(server.url), top_k=1)
    with pytest.raises(LLMError, match=message):
        engine.query(PLANETS)
    with pytest.raises(LLMError, match=message):
        asyncio.run(engine.aquery(PLANETS))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1:11434/v1", "is not a valid URL: Invalid port"),
        ("http://", "must be http:// or https:// followed by a host"),
        ("localhost:11434/v1", "must be http:// or https:// followed by a host"),
        ("http://local host:11434/v1", "it contains whitespace"),
        ("http://localhost:99999/v1", "port 99999 is not 1-65535"),
    ],
)
def test_a_malformed_http_llm_url_is_refused_when_the_llm_is_made(url, message):
    with pytest.raises(InputError, match=rf"LLM url {re.escape(repr(url))} .*{message}"):
        OpenAICompatibleLLM(url)


def test_an_unreachable_http_llm_is_a_clear_error(kit, server):
    url = server.url
    server.close()
    with pytest.raises(LLMError, match=f"cannot reach the LLM at {re.escape(url)}"):
        kit.query_engine(OpenAICompatibleLLM(url), top_k=1).query(PLANETS)


def test_a_slow_http_llm_is_a_clear_timeout(kit, server):
    server.delay = 1.0
    with pytest.raises(LLMError, match="did not answer within 0.2s"):
        kit.query_engine(OpenAICompatibleLLM(server.url, timeout=0.2), top_k=1).query(PLANETS)


def test_the_http_llm_timeout_is_set_from_the_environment(kit, server, monkeypatch):
    server.delay = 1.0
    monkeypatch.setenv("RAGKIT_LLM_URL", server.url)
    monkeypatch.setenv("RAGKIT_LLM_TIMEOUT", "0.2")
    with pytest.raises(
        LLMError, match=r"did not answer within 0.2s .*\(RAGKIT_LLM_TIMEOUT or --llm-timeout\)"
    ):
        kit.query_engine(top_k=1).query(PLANETS)


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "ten"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(server, monkeypatch, value):
    monkeypatch.setenv("RAGKIT_LLM_TIMEOUT", value)
    with pytest.raises(InputError, match=rf"RAGKIT_LLM_TIMEOUT.*got '?{value}"):
        OpenAICompatibleLLM.from_env(url=server.url)
    with pytest.raises(InputError, match="the LLM timeout must be a positive number of seconds"):
        OpenAICompatibleLLM(server.url, timeout=0)


# ragkit query


@pytest.fixture
def store_flags(ingested, tmp_path) -> list[str]:
    """A copy of the store, which the CLI can open while the module's kit holds the original."""
    copy = Path(shutil.copytree(ingested.store, tmp_path / "store"))
    return ["--store", str(copy), "--collection", corpus.COLLECTION]


def test_cli_query_answers_extractively_with_sources(store_flags, capsys, monkeypatch):
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)
    assert main(["query", "how should I sharpen a kitchen knife", *store_flags, "--top-k", "3"]) == 0
    answer, sources = capsys.readouterr().out.split("\n\nSources:\n")
    assert "whetstone" in answer and "[1]" in answer
    *listed, timings = [line for line in sources.splitlines() if line]
    assert listed[0].startswith("[1] ") and "Knife care" in listed[0] and "score" in listed[0]
    assert [line.split()[0] for line in listed] == [f"[{n}]" for n in range(1, len(listed) + 1)]
    assert timings.startswith("retrieve ") and "total" in timings


def test_cli_query_says_which_source_was_trimmed(store_flags, capsys, monkeypatch):
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)
    question = "Which volcanic rock is so light that it floats on water?"
    assert main(["query", question, *store_flags, "--top-k", "1", "--context-tokens", "90"]) == 0
    listed = capsys.readouterr().out.split("\n\nSources:\n")[1].splitlines()[0]
    assert listed.startswith("[1] ") and listed.endswith("(trimmed to fit the context)")


def test_cli_query_keeps_only_sources_at_or_above_the_score_threshold(store_flags, capsys, monkeypatch):
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)
    argv = ["query", "how should I sharpen a kitchen knife", *store_flags, "--mode", "dense", "--json"]

    def scores(*flags: str) -> list[float]:
        assert main([*argv, *flags]) == 0
        return [source["score"] for source in json.loads(capsys.readouterr().out)["sources"]]

    everything = scores()
    threshold = (everything[0] + everything[-1]) / 2
    strong = scores("--score-threshold", str(threshold))
    assert 0 < len(strong) < len(everything) and min(strong) >= threshold
    assert main([*argv[:-1], "--score-threshold", "1.01"]) == 0  # above any cosine
    assert capsys.readouterr().out.startswith("No section of collection 'corpus' matched the question.")


def test_cli_query_json_through_an_http_llm(store_flags, server, capsys, monkeypatch):
    monkeypatch.setenv("RAGKIT_LLM_API_KEY", "from-env")
    argv = ["query", PLANETS, *store_flags, "--llm-url", server.url, "--llm-model", "m", "--json"]
    assert main(argv) == 0
    response = json.loads(capsys.readouterr().out)
    assert set(response) == set(QueryResponse.__dataclass_fields__)
    assert response["answer"] == "Transit method [1]."
    assert response["sources"][0]["citation"] == 1 and "transit method" in response["sources"][0]["text"]
    assert (server.requests[0]["auth"], server.requests[0]["body"]["model"]) == ("Bearer from-env", "m")


def test_cli_query_names_a_malformed_llm_url_in_one_line(store_flags, capsys):
    assert main(["query", PLANETS, *store_flags, "--llm-url", "http://[::1:11434/v1"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "ragkit: error: LLM url 'http://[::1:11434/v1' is not a valid URL: Invalid port: ':1:11434'\n"
    )


def test_cli_query_waits_for_the_llm_as_long_as_llm_timeout_says(store_flags, server, capsys):
    server.delay = 1.0
    assert main(["query", PLANETS, *store_flags, "--llm-url", server.url, "--llm-timeout", "0.2"]) == 2
    assert capsys.readouterr().err.startswith(
        f"ragkit: error: the LLM at {server.url} did not answer within 0.2s"
    )
    assert main(["query", PLANETS, *store_flags, "--llm-url", server.url, "--llm-timeout", "-1"]) == 2
    assert "the LLM timeout must be a positive number of seconds" in capsys.readouterr().err


def test_cli_query_reports_an_llm_failure_in_one_line(store_flags, server, capsys):
    server.status, server.reply = 503, {"error": "overloaded"}
    assert main(["query", PLANETS, *store_flags, "--llm-url", server.url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragkit: error: the LLM at") and "HTTP 503" in err
