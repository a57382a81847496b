"""`Kit.search` / `Kit.asearch` and `ragkit search`, end to end: minilm, embedded Qdrant, a written corpus."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.cli import main
from ragkit.commands.search import parse_filters
from ragkit.errors import CollectionNotFoundError, InputError, ModelMismatchError
from ragkit.store import Point, Store, point_id
from tests import corpus

QUESTIONS = [
    ("how do astronomers discover planets around other stars", "transit method"),
    ("why does the tail of a comet point away from the sun", "Halley"),
    ("can light escape from the event horizon", "Hawking radiation"),
    ("how should I sharpen a kitchen knife", "whetstone"),
    ("my espresso shot tastes sour, what should I change", "under-extracted"),
    ("a rock that floats on water", "Pumice"),
    ("baking bread with a wild yeast starter", "Sourdough rises"),
]


@pytest.fixture(scope="module")
def kit(ingested):
    return ingested.kit


@pytest.fixture(scope="module")
def docs(ingested) -> Path:
    return ingested.docs


@pytest.fixture
def store_copy(ingested, tmp_path) -> Path:
    """The store in a folder of its own, which the CLI can open while the module's kit holds the original."""
    return Path(shutil.copytree(ingested.store, tmp_path / "store"))


@pytest.mark.parametrize(("question", "phrase"), QUESTIONS)
def test_each_question_finds_its_section_first(kit, question, phrase):
    hits = kit.search(question, top_k=3)
    assert phrase in hits[0].text
    assert hits[0].score > hits[-1].score


def test_hits_are_best_first_with_the_section_metadata(kit, docs):
    hits = kit.search("comets and their tails", top_k=10)
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    uuid.UUID(top.id)
    assert top.metadata["source"] == str(docs / "astronomy.md")
    assert top.metadata["title"] == "Astronomy notes"
    assert top.metadata["breadcrumb"][-1] == "Comets"
    assert top.metadata["section_index"] == 2
    assert {"doc_id", "page_start", "page_end"} <= top.metadata.keys()
    assert "text" not in top.metadata


def test_a_source_filter_keeps_only_that_document(kit, docs):
    source = str(docs / "astronomy.md")
    hits = kit.search("how do I brew espresso", top_k=10, filters={"source": source})
    assert len(hits) == 3
    assert {h.metadata["source"] for h in hits} == {source}


def test_an_any_of_filter_keeps_the_listed_documents(kit):
    volcano = kit.search("pumice", top_k=1)[0].metadata["doc_id"]
    astronomy = kit.search("comets", top_k=1)[0].metadata["doc_id"]
    hits = kit.search("espresso", top_k=10, filters={"doc_id": [volcano, astronomy]})
    assert {h.metadata["doc_id"] for h in hits} == {volcano, astronomy}
    assert len(hits) == 4


def test_a_range_filter_narrows_by_number(kit):
    unfiltered = kit.search("sourdough bread starter", top_k=1)[0]
    assert unfiltered.metadata["section_index"] == 0
    hits = kit.search("sourdough bread starter", top_k=10, filters={"section_index": {"gte": 1, "lt": 2}})
    assert hits and all(h.metadata["section_index"] == 1 for h in hits)
    assert all("Sourdough rises" not in h.text for h in hits)


def test_filter_integers_are_those_of_64_bits(kit):
    # Payload integers are 64-bit in Qdrant: the extremes filter like any number, one beyond is refused.
    assert kit.search("comets", filters={"section_index": 2**63 - 1}) == []
    hits = kit.search("comets", top_k=10, filters={"section_index": [-(2**63), 2]})
    assert hits and {h.metadata["section_index"] for h in hits} == {2}
    for beyond in (2**63, [2, -(2**63) - 1]):
        with pytest.raises(
            InputError, match="filter 'section_index': the integer -?[0-9]+ is outside the 64-bit"
        ):
            kit.search("comets", filters={"section_index": beyond})


def test_a_score_threshold_drops_weak_hits(kit):
    everything = kit.search("knife sharpening", top_k=10)
    threshold = (everything[0].score + everything[-1].score) / 2
    strong = kit.search("knife sharpening", top_k=10, score_threshold=threshold)
    assert 0 < len(strong) < len(everything)
    assert all(h.score >= threshold for h in strong)


def test_asearch_matches_search_without_blocking_the_loop(kit):
    async def search_while_ticking():
        ticks = 0
        task = asyncio.create_task(kit.asearch("a rock that floats on water", top_k=3))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.001)
        return await task, ticks

    hits, ticks = asyncio.run(search_while_ticking())
    assert [h.id for h in hits] == [h.id for h in kit.search("a rock that floats on water", top_k=3)]
    assert ticks > 1


def test_asearch_leaves_the_event_loop_free_while_the_store_is_busy():
    # A fresh Kit's first search checks that its collection exists: a round trip on a server, which here
    # waits for another thread's call to qdrant-client's in-memory engine (a server's request path).
    with ragkit.open("docs", url=":memory:") as fresh:
        text = "Prune the suckers of tomato plants in summer"
        fresh.store.ensure_collection("docs", dim=4, model="someone/uncached-model")
        fresh.store.upsert(
            "docs", [Point(point_id("d", 0, text), [1.0, 0, 0, 0], {"text": text, "doc_id": "d"})]
        )
        busy, over, ended_by_the_loop = threading.Event(), threading.Event(), []

        def other_call():
            with fresh.store._engine.serial:  # held as another thread's long call holds it
                busy.set()
                ended_by_the_loop.append(over.wait(timeout=10))

        async def search_while_busy():
            task = asyncio.create_task(fresh.asearch("tomato suckers", mode="sparse"))
            for _ in range(10):
                await asyncio.sleep(0.001)  # a loop stuck in the search would not come back here in time
            over.set()
            return await task

        other = threading.Thread(target=other_call)
        other.start()
        busy.wait()
        hits = asyncio.run(search_while_busy())
        other.join()
    assert ended_by_the_loop == [True]
    assert [hit.text for hit in hits] == [text]


def test_threads_asking_a_fresh_kit_for_its_encoder_at_once_share_one_load(tmp_path, tiny_gte_dir):
    threads = 8
    start = threading.Barrier(threads)

    def ask(kit):
        start.wait()
        return kit.encoder

    with (
        ragkit.open("docs", store=tmp_path, model=str(tiny_gte_dir), device="cpu") as kit,
        ThreadPoolExecutor(threads) as pool,
    ):
        encoders = list(pool.map(ask, [kit] * threads))
    loads = {id(encoder) for encoder in encoders}  # all still alive, so no two share an id by reuse
    assert len(loads) == 1, f"{len(loads)} copies of the model loaded"


@pytest.mark.parametrize("query", ["", "   \n"])
def test_an_empty_query_is_refused(kit, query):
    with pytest.raises(InputError, match="query is empty"):
        kit.search(query)


def test_an_unknown_filter_operator_is_refused(kit):
    with pytest.raises(InputError, match="unknown range operator.*between"):
        kit.search("comets", filters={"section_index": {"between": [1, 2]}})


def test_a_missing_collection_is_a_clear_error(tmp_path):
    with (
        ragkit.open("nope", store=tmp_path / "empty", model="minilm") as kit,
        pytest.raises(CollectionNotFoundError, match="collection 'nope' not found"),
    ):
        kit.search("comets")


def test_an_api_key_with_no_server_to_send_it_to_is_refused(tmp_path, monkeypatch):
    # As the CLI refuses --api-key without a server: a key meant for a server must not be dropped.
    monkeypatch.setenv("RAGKIT_QDRANT_URL", "http://qdrant.example:6333")  # an explicit store= wins
    for where in ({"store": tmp_path / "store"}, {}):
        with pytest.raises(InputError, match="api_key is given but there is no Qdrant server"):
            if not where:
                monkeypatch.delenv("RAGKIT_QDRANT_URL")
            ragkit.open("docs", api_key="secret", **where)
    assert not (tmp_path / "store").exists()


def test_a_collection_built_with_another_model_is_refused(tmp_path):
    with ragkit.open("other", store=tmp_path / "store", model="minilm", device="cpu") as kit:
        kit.store.ensure_collection("other", dim=384, model="someone/another-model")
        with pytest.raises(ModelMismatchError, match="someone/another-model"):
            kit.search("comets")


TOMATO_NOTE = "Prune the suckers of tomato plants in summer"


@pytest.fixture
def uncached(tmp_path):
    """A collection of one note whose model cannot be loaded here: only searches that embed need it."""
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=4, model="someone/uncached-model")
        point = Point(point_id("d", 0, TOMATO_NOTE), [1.0, 0, 0, 0], {"text": TOMATO_NOTE, "doc_id": "d"})
        store.upsert("docs", [point])
    with ragkit.open("docs", store=tmp_path) as kit:
        yield kit


def test_a_sparse_search_needs_no_model_and_an_unknown_mode_loads_none(uncached):
    assert [hit.text for hit in uncached.search("tomato suckers", mode="sparse")] == [TOMATO_NOTE]
    with pytest.raises(InputError, match="search mode 'bm25' is unknown"):
        uncached.search("tomato suckers", mode="bm25")
    assert uncached.loaded_encoder is None
    with pytest.raises(Exception, match="someone/uncached-model"):
        uncached.search("tomato suckers", mode="dense")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"score_threshold": "0.5"}, "score_threshold must be a finite number or None, got '0.5'"),
        ({"score_threshold": math.nan}, "score_threshold must be a finite number or None, got nan"),
        ({"score_threshold": math.inf}, "score_threshold must be a finite number or None, got inf"),
        ({"score_threshold": -math.inf}, "score_threshold must be a finite number or None, got -inf"),
        ({"score_threshold": True}, "score_threshold must be a finite number or None, got True"),
        ({"fusion": "rank"}, "fusion 'rank' is unknown; use one of rrf, dbsf"),
    ],
    ids=["str-threshold", "nan-threshold", "inf-threshold", "-inf-threshold", "bool-threshold", "fusion"],
)
def test_bad_search_arguments_are_refused_before_a_model_is_loaded(uncached, options, message):
    with pytest.raises(InputError, match=re.escape(message)):
        uncached.search("tomato suckers", **options)
    assert uncached.loaded_encoder is None


def test_a_score_threshold_may_be_any_real_number(uncached):
    for threshold in (0, 0.0, np.float32(0.0)):
        hits = uncached.search("tomato suckers", mode="sparse", score_threshold=threshold)
        assert [hit.text for hit in hits] == [TOMATO_NOTE]


@pytest.mark.parametrize(
    ("flags", "filters"),
    [
        ([], None),
        (["source=docs/a.md"], {"source": "docs/a.md"}),
        (["section_index=2"], {"section_index": 2}),
        (['doc_id="42"'], {"doc_id": "42"}),
        (["flag=true"], {"flag": True}),
        (["doc_id=a", "doc_id=b", "doc_id=c"], {"doc_id": ["a", "b", "c"]}),
        (["page_start>=3", "page_start<7"], {"page_start": {"gte": 3, "lt": 7}}),
        (["score>0.5"], {"score": {"gt": 0.5}}),
        (["title=a=b"], {"title": "a=b"}),
    ],
)
def test_filter_flags_become_search_filters(flags, filters):
    assert parse_filters(flags) == filters


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["no-operator"], "expected KEY=VALUE"),
        (["=value"], "expected KEY=VALUE"),
        (["page_start>=three"], "needs a number"),
        (["page_start>=3", "page_start=4"], "already has a range"),
        (["page_start=4", "page_start<9"], "already has a value"),
    ],
)
def test_malformed_filter_flags_are_refused(flags, message):
    with pytest.raises(InputError, match=message):
        parse_filters(flags)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_search_prints_a_table(store_copy, capsys):
    store = ["--store", str(store_copy), "--collection", corpus.COLLECTION]
    code, out, _ = _run(capsys, "search", "how should I sharpen a kitchen knife", *store, "--top-k", "2")
    assert code == 0
    header, first, second = out.strip().splitlines()
    assert header.split() == ["#", "score", "source", "section", "pages", "text"]
    assert first.startswith("1 ") and "Knife care" in first and "kitchen" in first
    assert second.startswith("2 ")


@pytest.mark.parametrize("command", ["search", "query"])
def test_cli_top_k_out_of_range_is_refused_by_the_flag_it_was_given_as(store_copy, capsys, command):
    store = ["--store", str(store_copy), "--collection", corpus.COLLECTION]
    for value in ("0", "-3", "1001", "two"):
        with pytest.raises(SystemExit) as refused:
            main([command, "knife", *store, "--top-k", value])
        error = capsys.readouterr().err
        assert refused.value.code == 2
        assert f"argument --top-k: {value!r} is not a number of sections from 1 to 1000" in error
    assert main([command, "knife", *store, "--top-k", "1000", "--json"]) == 0


def test_cli_search_json_applies_filters(store_copy, docs, capsys):
    source = str(docs / "volcanoes.txt")
    store = ["--store", str(store_copy), "--collection", corpus.COLLECTION]
    code, out, _ = _run(capsys, "search", "espresso", *store, "--filter", f"source={source}", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["query"] == "espresso"
    assert [hit["metadata"]["source"] for hit in result["hits"]] == [source]
    assert "Pumice" in result["hits"][0]["text"]
    assert set(result["hits"][0]) == {"id", "score", "text", "metadata"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["search", "comets", "--collection", "nope"],
            "collection 'nope' not found .*existing collections: corpus",
        ),
        (["search", " ", "--collection", corpus.COLLECTION], "the query is empty"),
        (
            ["search", "comets", "--collection", corpus.COLLECTION, "--filter", "page_start>x"],
            "needs a number",
        ),
        (
            ["search", "comets", "--collection", corpus.COLLECTION, "--filter", "page_start>=nan"],
            "filter 'page_start': range bound gte=nan must be a finite number",
        ),
        (
            ["search", "comets", "--collection", corpus.COLLECTION, "--filter", "page_end<=1e999"],
            "filter 'page_end': range bound lte=inf must be a finite number",
        ),
    ],
)
def test_cli_search_errors_are_one_clear_line(store_copy, capsys, argv, message):
    code, out, err = _run(capsys, *argv, "--store", str(store_copy))
    assert code == 2
    assert out == ""
    assert re.match(f"ragkit: error: .*{message}", err)
    assert len(err.strip().splitlines()) == 1


def test_a_collection_deleted_after_loading_is_still_named_missing():
    # On a server (here its request path in qdrant-client's in-memory engine) another client can delete it.
    with ragkit.open("gone", url=":memory:", model="minilm") as kit:
        kit.ingest([Path(__file__).resolve().parent.parent / "samples"], workers=0)
        assert kit.search("tomatoes", top_k=1)
        kit.store._engine._client.delete_collection(
            "gone"
        )  # as another client would; the facade has no such verb
        with pytest.raises(CollectionNotFoundError, match="'gone' not found"):
            kit.search("tomatoes")
