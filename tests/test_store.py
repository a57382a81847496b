"""The Store facade against real engines, no mocks: Qdrant Edge in a temporary folder, and the server
request path through qdrant-client's in-memory engine. Every behaviour below holds on both unless a test
names one engine."""

from __future__ import annotations

import datetime
import enum
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ragkit.errors import (
    CollectionNotFoundError,
    InputError,
    ModelMismatchError,
    StoreError,
    StoreLockedError,
)
from ragkit.store import CollectionOptions, Point, SchemaError, Store, parse_filters, point_id

REPO = Path(__file__).resolve().parents[1]


ENGINES = {"edge": lambda folder: Store.open(path=folder), "server": lambda _: Store.open(url=":memory:")}


@pytest.fixture(params=ENGINES, ids=ENGINES)
def store(request, tmp_path: Path):
    with ENGINES[request.param](tmp_path / "db") as opened:
        yield opened


@pytest.fixture
def folder_store(tmp_path: Path):
    with Store.open(path=tmp_path / "db") as opened:
        yield opened


def section(i: int, *, dim: int = 4, **payload) -> Point:
    """A point of document `d{i % 3}`, section i, with a distinct direction per section."""
    doc_id = f"d{i % 3}"
    text = f"section {i}"
    vector = np.zeros(dim, dtype=np.float32)
    vector[0], vector[1 + i % (dim - 1)] = 1.0, 0.1 * (i + 1)
    body = {"doc_id": doc_id, "source": "a.pdf" if i % 2 else "b.md", "page_start": i, "flagged": i % 4 == 0}
    return Point(id=point_id(doc_id, i, text), vector=vector, payload={**body, "text": text, **payload})


def test_new_collection_records_model_and_reopening_checks_it(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        created = store.ensure_collection("docs", dim=4, model="gte-base-en-v1.5")
        assert (created.name, created.model, created.dim, created.points) == (
            "docs",
            "gte-base-en-v1.5",
            4,
            0,
        )
        store.upsert("docs", [section(0)])
    with Store.open(path=tmp_path) as store:
        assert store.ensure_collection("docs", dim=4, model="gte-base-en-v1.5").points == 1
        assert store.collections() == ["docs"]
        with pytest.raises(ModelMismatchError) as mismatch:
            store.ensure_collection("docs", dim=4, model="gte-large-en-v1.5")
        assert "'docs'" in str(mismatch.value)
        assert "'gte-base-en-v1.5'" in str(mismatch.value)
        assert "'gte-large-en-v1.5'" in str(mismatch.value)
        with pytest.raises(ModelMismatchError, match="dim 8"):
            store.ensure_collection("docs", dim=8, model="gte-base-en-v1.5")


def test_a_folder_holds_one_edge_shard_per_collection_with_its_schema_beside_it(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=4, model="m")
        store.upsert("docs", [section(i) for i in range(3)])
    assert json.loads((tmp_path / "ragkit-store.json").read_text())["engine"] == "qdrant-edge"
    recorded = json.loads((tmp_path / "collections" / "docs" / "schema.json").read_text())
    assert recorded["ragkit_schema"] == 2
    assert (recorded["model"], recorded["dim"]) == ("m", 4)
    assert recorded["bm25"]["language"] == "english"
    assert recorded["indexes"] == {"doc_id": "keyword", "source": "keyword"}
    assert (tmp_path / "collections" / "docs" / "shard" / "wal").is_dir()
    with Store.open(path=tmp_path) as store:
        assert store.count("docs") == 3


def test_a_collection_not_made_by_ragkit_is_refused_rather_than_written_into(tmp_path: Path):
    with Store.open(path=tmp_path):
        pass
    foreign = tmp_path / "collections" / "foreign"
    foreign.mkdir(parents=True)
    (foreign / "schema.json").write_text('{"vectors": 4}')
    with (
        Store.open(path=tmp_path) as store,
        pytest.raises(StoreError, match="'foreign'.*not created by ragkit"),
    ):
        store.ensure_collection("foreign", dim=4, model="m")


DAMAGED_SCHEMAS = {
    "not an object": ("[1, 2]", "not created by ragkit"),
    "a number": ("5", "not created by ragkit"),
    "a string": ('"model"', "not created by ragkit"),
    "newer": ({"ragkit_schema": 3}, "ragkit schema 3, written by a newer ragkit"),
    "dim a string": ({"dim": "4"}, "dim '4' is not a positive integer"),
    "dim a fraction": ({"dim": 4.5}, "dim 4.5 is not a positive integer"),
    "dim zero": ({"dim": 0}, "dim 0 is not a positive integer"),
    "model a number": ({"model": 5}, "model 5 is not a model name"),
    "unknown index kind": ({"indexes": {"doc_id": "fulltext"}}, "indexes .* is not a mapping"),
    "unknown quantization": ({"quantize": "int4"}, "quantize 'int4' is not one of int8"),
    "bm25 flag a string": (
        {"bm25": {"stemming": "no"}},
        "stemming, stopwords and normalize must be true or false",
    ),
    "bm25 normalize a string": ({"bm25": {"normalize": "yes"}}, "normalize must be true or false"),
    "bm25 k a string": ({"bm25": {"k": "1.2"}}, "k, b and avg_len must be finite numbers"),
}


@pytest.mark.parametrize("damage, message", DAMAGED_SCHEMAS.values(), ids=DAMAGED_SCHEMAS.keys())
def test_a_damaged_or_foreign_schema_file_is_refused_naming_the_file_and_the_fault(
    tmp_path: Path, damage, message: str
):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=4, model="m")
        store.upsert("docs", [section(0)])
    recorded = tmp_path / "collections" / "docs" / "schema.json"
    if isinstance(damage, dict):
        damage = json.dumps(json.loads(recorded.read_text()) | damage)
    recorded.write_text(damage)
    with Store.open(path=tmp_path) as store, pytest.raises(SchemaError) as refused:
        store.search("docs", [1, 0, 0, 0])
    assert re.search(message, str(refused.value))
    assert f"collection 'docs' in the local store {tmp_path} ({recorded})" in str(refused.value)


@pytest.mark.parametrize("marker", ["[]", '{"version": 2}'])
def test_a_store_folder_of_another_format_is_refused_naming_its_marker(tmp_path: Path, marker: str):
    (tmp_path / "ragkit-store.json").write_text(marker)
    with pytest.raises(
        StoreError, match=r"a ragkit store of format .*ragkit-store.json\); this ragkit reads"
    ):
        Store.open(path=tmp_path)


def test_a_store_path_that_is_a_file_is_refused_as_a_file_not_as_an_uncreatable_folder(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not a store")
    with pytest.raises(
        StoreError, match=re.escape(f"the local store path {tmp_path / 'notes.txt'} is a file")
    ):
        Store.open(path=tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "not a store"


def test_a_server_collection_of_a_newer_schema_says_a_newer_ragkit_wrote_it():
    with Store.open(url=":memory:") as store:
        store.ensure_collection("docs", dim=4, model="m")
        client = store._engine._client
        client.update_collection("docs", metadata={"ragkit_schema": 3})
        with pytest.raises(SchemaError, match="'docs' .* has ragkit schema 3, written by a newer ragkit"):
            store.schema("docs")


def test_a_collection_folder_that_lost_its_schema_keeps_its_points_and_says_how_to_restore_them(
    tmp_path: Path,
):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=4, model="m")
        store.upsert("docs", [section(i) for i in range(5)])
    recorded = tmp_path / "collections" / "docs" / "schema.json"
    kept = recorded.read_text()
    recorded.unlink()
    with Store.open(path=tmp_path) as store:
        assert store.collections() == ["docs"]  # there, but unreadable: not "not found"
        with pytest.raises(SchemaError, match=r"'docs' .* has no schema.json .* put schema.json back"):
            store.count("docs")
        with pytest.raises(StoreError) as refused:
            store.ensure_collection("docs", dim=4, model="m")
        message = str(refused.value)
        assert str(tmp_path / "collections" / "docs") in message
        assert "5 points but no schema.json" in message
    recorded.write_text(kept)
    with Store.open(path=tmp_path) as store:
        assert store.count("docs") == 5


def test_a_create_cut_short_leaves_nothing_in_the_way_of_the_next_one(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("empty", dim=4, model="m")
    # Left by a create that crashed: an empty shard without its schema (as creates before staging
    # left them), and a half-made staging folder.
    (tmp_path / "collections" / "empty" / "schema.json").unlink()
    (tmp_path / ".creating" / "docs" / "shard").mkdir(parents=True)
    (tmp_path / ".creating" / "docs" / "shard" / "half-written").write_bytes(b"\0" * 10)
    with Store.open(path=tmp_path) as store:
        for name in ("empty", "docs"):
            assert store.ensure_collection(name, dim=4, model="m").points == 0
            store.upsert(name, [section(0)])
        assert store.collections() == ["docs", "empty"]
    with Store.open(path=tmp_path) as store:
        assert [store.count(name) for name in ("docs", "empty")] == [1, 1]
    assert not (tmp_path / ".creating" / "docs").exists()


def test_a_folder_collection_name_differing_from_another_only_in_case_is_refused(tmp_path: Path):
    # On macOS, Windows or a Docker Desktop volume "Docs" is the folder of "docs": creating it went over
    # that collection's shard. Refused on every file system, so a store folder reads the same everywhere.
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=4, model="m")
        store.upsert("docs", [section(0)])
        with pytest.raises(
            InputError, match="'Docs' differs from the existing collection 'docs'.*only in case"
        ):
            store.ensure_collection("Docs", dim=4, model="m")
        assert store.collections() == ["docs"] and store.count("docs") == 1


@pytest.mark.parametrize("name", ["", "a/b", "a b", "x" * 256, "..", "ünï"])
def test_bad_collection_names_are_refused(store: Store, name: str):
    with pytest.raises(InputError, match="collection name"):
        store.ensure_collection(name, dim=4, model="m")


def test_point_id_is_a_deterministic_uuid_of_all_three_parts():
    first = point_id("doc", 0, "text")
    assert uuid.UUID(first).version == 5
    assert point_id("doc", 0, "text") == first
    assert (
        len({first, point_id("doc2", 0, "text"), point_id("doc", 1, "text"), point_id("doc", 0, "text!")})
        == 4
    )


def test_upserting_the_same_points_twice_keeps_one_copy(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    assert store.upsert("docs", (section(i) for i in range(10))) == 10
    assert store.upsert("docs", (section(i) for i in range(10))) == 10
    assert store.count("docs") == 10


def test_a_point_id_in_any_spelling_of_a_uuid_is_stored_in_its_canonical_form(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    pid = point_id("d", 0, "t")
    spellings = [pid.upper(), "{" + pid + "}", "urn:uuid:" + pid, pid.replace("-", "")]
    for spelling in spellings:
        store.upsert("docs", [Point(spelling, [1.0, 0, 0, 0], {"text": "t"})])
    assert [hit_id for hit_id, _ in store.scroll_payloads("docs", [])] == [pid]


def test_an_upsert_that_returned_is_on_disk_not_only_in_the_write_ahead_log(tmp_path: Path):
    # Upserts flush the shard once per call, after the last of its batches, not after every batch (a
    # flush costs about as much as writing 500 points). A copy of the folder without the shard's WAL is
    # what a power loss could leave if the log's pages were not yet written: it must hold every point.
    with Store.open(path=tmp_path / "db") as store:
        store.ensure_collection("docs", dim=4, model="m")
        assert store.upsert("docs", (section(i) for i in range(600)), max_batch_points=256) == 600
        shutil.copytree(tmp_path / "db", tmp_path / "copy", ignore=shutil.ignore_patterns("wal", ".lock"))
    with Store.open(path=tmp_path / "copy") as copy:
        assert copy.count("docs") == 600


def test_an_upsert_whose_points_fail_part_way_leaves_the_batches_it_wrote_on_disk(tmp_path: Path):
    # The same power-loss copy, of an upsert whose generator raised after two whole batches: those are
    # written (the caller deletes them if it needs all-or-nothing), so they must be on disk too.
    def sections_then_a_failure() -> Iterator[Point]:
        yield from (section(i) for i in range(600))
        raise ValueError("the 601st section could not be embedded")

    with Store.open(path=tmp_path / "db") as store:
        store.ensure_collection("docs", dim=4, model="m")
        with pytest.raises(ValueError, match="601st section"):
            store.upsert("docs", sections_then_a_failure(), max_batch_points=256)
        shutil.copytree(tmp_path / "db", tmp_path / "copy", ignore=shutil.ignore_patterns("wal", ".lock"))
    with Store.open(path=tmp_path / "copy") as copy:
        assert copy.count("docs") == 512


def test_upsert_splits_batches_by_size_and_by_count(store: Store, caplog: pytest.LogCaptureFixture):
    store.ensure_collection("docs", dim=4, model="m")
    points = [section(i, text="x" * 1000) for i in range(30)]
    caplog.set_level(logging.DEBUG, logger="ragkit.store")

    # One point estimates at ~1.3 kB, so a 3000-byte cap fits two per request.
    assert store.upsert("docs", points, max_batch_bytes=3000) == 30
    assert [r.args[0] for r in caplog.records if r.msg.startswith("upserted")] == [2] * 15
    assert store.count("docs") == 30

    caplog.clear()
    assert store.upsert("docs", points, max_batch_points=7) == 30
    assert [r.args[0] for r in caplog.records if r.msg.startswith("upserted")] == [7, 7, 7, 7, 2]


def test_search_returns_nearest_first_with_cosine_scores_and_payload(store: Store):
    store.ensure_collection("docs", dim=3, model="m")
    vectors = {
        "same": [2.0, 0, 0],
        "diagonal": [1.0, 1.0, 0],
        "orthogonal": [0, 0, 5.0],
        "opposite": [-1.0, 0, 0],
    }
    store.upsert("docs", [Point(point_id(k, 0, k), v, {"name": k, "text": k}) for k, v in vectors.items()])

    hits = store.search("docs", np.array([1.0, 0, 0]), top_k=3)
    assert [h.payload["name"] for h in hits] == ["same", "diagonal", "orthogonal"]
    assert [h.score for h in hits] == pytest.approx([1.0, 2**-0.5, 0.0], abs=1e-6)
    assert hits[0].id == point_id("same", 0, "same")
    assert [h.payload["name"] for h in store.search("docs", [1.0, 0, 0], score_threshold=0.5)] == [
        "same",
        "diagonal",
    ]


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5", True, [0.5]])
def test_a_score_threshold_that_is_not_a_finite_number_is_refused(store: Store, threshold):
    # A NaN threshold gave no hits on Edge and every hit on qdrant-client; a string a raw TypeError.
    store.ensure_collection("docs", dim=4, model="m")
    store.upsert("docs", [section(i) for i in range(3)])
    with pytest.raises(InputError, match=r"score_threshold must be a (finite )?number, got"):
        store.search("docs", [1, 0, 0, 0], score_threshold=threshold)
    assert len(store.search("docs", [1, 0, 0, 0], score_threshold=np.float32(0.5))) == 3


@pytest.mark.parametrize("mode", ["sparse", "hybrid"])
def test_a_query_text_with_a_lone_surrogate_is_refused_naming_it(store: Store, mode: str):
    # BM25 of it raised a bare UnicodeEncodeError out of Store.search (sparse mode needs no encoder,
    # whose own check would have caught it).
    store.ensure_collection("docs", dim=4, model="m")
    with pytest.raises(
        InputError, match=r"query text 'caf\\ud800e' holds a lone surrogate U\+D800 at position 3"
    ):
        store.search("docs", [1, 0, 0, 0], mode=mode, text="caf\ud800e")


FILTER_CASES = {
    "equality str": ({"source": "a.pdf"}, lambda p: p["source"] == "a.pdf"),
    "equality int": ({"page_start": 4}, lambda p: p["page_start"] == 4),
    "equality bool": ({"flagged": True}, lambda p: p["flagged"]),
    "any-of str": ({"doc_id": ["d0", "d2"]}, lambda p: p["doc_id"] in ("d0", "d2")),
    "any-of int": ({"page_start": [1, 5, 99]}, lambda p: p["page_start"] in (1, 5)),
    "range gte lt": ({"page_start": {"gte": 3, "lt": 7}}, lambda p: 3 <= p["page_start"] < 7),
    "range gt lte": ({"page_start": {"gt": 3, "lte": 7}}, lambda p: 3 < p["page_start"] <= 7),
    "several keys are ANDed": (
        {"doc_id": "d1", "page_start": {"gte": 4}},
        lambda p: p["doc_id"] == "d1" and p["page_start"] >= 4,
    ),
}


@pytest.mark.parametrize("filters, keep", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_every_filter_form_narrows_search_count_and_scroll(store: Store, filters, keep):
    store.ensure_collection("docs", dim=4, model="m")
    points = [section(i) for i in range(12)]
    store.upsert("docs", points)
    expected = {p.id for p in points if keep(p.payload)}
    assert 0 < len(expected) < len(points)

    assert {h.id for h in store.search("docs", [1, 0, 0, 0], top_k=50, filters=filters)} == expected
    assert store.count("docs", filters) == len(expected)
    assert {pid for pid, _ in store.scroll_payloads("docs", ["doc_id"], filters)} == expected


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"page_start": {"between": 3}}, r"'page_start'.*gt, gte, lt, lte"),
        ({"page_start": {}}, r"'page_start'.*gt, gte, lt, lte"),
        ({"page_start": {"gte": "3"}}, r"'page_start'.*must be a number"),
        ({"doc_id": []}, r"'doc_id'.*non-empty"),
        ({"doc_id": ["a", 1]}, r"'doc_id'.*all str or all int"),
        ({"doc_id": [["a"]]}, r"'doc_id'"),
        ({"doc_id": None}, r"'doc_id'.*gt, gte, lt, lte"),
        ({"score": 0.5}, r"'score'.*gt, gte, lt, lte"),
        ({"": "x"}, r"non-empty string"),
    ],
)
def test_malformed_filters_name_the_key_and_the_allowed_forms(filters, message):
    with pytest.raises(InputError, match=message):
        parse_filters(filters)


def test_no_filter_means_no_condition():
    assert parse_filters(None) == ()
    assert parse_filters({}) == ()


def test_delete_where_removes_only_the_matching_points(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    store.upsert("docs", [section(i) for i in range(9)])
    store.delete_where("docs", {"doc_id": "d1"})
    assert store.count("docs") == 6
    assert store.count("docs", {"doc_id": "d1"}) == 0
    with pytest.raises(InputError, match="delete all points"):
        store.delete_where("docs", {})


def test_delete_points_removes_the_given_ids(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    points = [section(i) for i in range(5)]
    store.upsert("docs", points)
    store.delete_points("docs", [points[0].id, points[3].id, point_id("never", 0, "written")])
    assert {pid for pid, _ in store.scroll_payloads("docs", [])} == {points[i].id for i in (1, 2, 4)}


def test_delete_points_given_one_id_as_a_string_says_to_pass_a_list(store: Store):
    # It iterated the string and refused its first character: "point id 'e' is not a UUID".
    store.ensure_collection("docs", dim=4, model="m")
    point = section(0)
    store.upsert("docs", [point])
    with pytest.raises(InputError, match=rf"not the string '{point.id}': use \['{point.id}'\]"):
        store.delete_points("docs", point.id)
    assert store.count("docs") == 1


def test_scroll_payloads_pages_through_every_point_with_only_the_requested_fields(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    points = [section(i, doc_hash=f"h{i % 3}", section_count=25) for i in range(25)]
    store.upsert("docs", points)

    rows = list(store.scroll_payloads("docs", ["doc_id", "doc_hash"], page_size=10))
    assert sorted(pid for pid, _ in rows) == sorted(p.id for p in points)
    by_id = {p.id: p.payload for p in points}
    for pid, payload in rows:
        assert payload == {"doc_id": by_id[pid]["doc_id"], "doc_hash": by_id[pid]["doc_hash"]}
    assert all(payload == {} for _, payload in store.scroll_payloads("docs", [], page_size=10))
    with pytest.raises(InputError, match="sequence of payload keys"):
        store.scroll_payloads("docs", "doc_id")


@pytest.mark.parametrize("page_size", [0, -1, 2.5, True, 2**64, 2**100])
def test_a_scroll_page_size_that_is_not_a_positive_int_the_engines_take_is_refused_before_the_first_page(
    store: Store, page_size
):
    # scroll_points(page_size=0) looped forever on Edge, which answers an empty page with a next offset;
    # a page of 2**64 points raised a bare "OverflowError: int too big to convert" there.
    store.ensure_collection("docs", dim=4, model="m")
    store.upsert("docs", [section(0)])
    refused = re.escape(f"page_size must be a positive int, got {page_size}")
    if page_size >= 2**64:
        refused += re.escape(f": from 1 to {2**64 - 1} (2**64 - 1)")
    with pytest.raises(InputError, match=refused):
        store.scroll_payloads("docs", ["doc_id"], page_size=page_size)
    with pytest.raises(InputError, match=refused):
        store.scroll_points("docs", page_size=page_size)
    assert len(list(store.scroll_points("docs", page_size=2**64 - 1))) == 1


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize("top_k", [0, 2**62, 2**64, 2**100])
def test_a_top_k_beyond_what_the_engines_take_is_refused_naming_it_and_the_range(
    store: Store, mode: str, top_k: int
):
    # Edge takes a limit as an unsigned 64-bit int: top_k=2**64 (and, in hybrid mode, any top_k whose
    # candidate lists of 4 x top_k passed it) failed with a bare "OverflowError: int too big to convert".
    store.ensure_collection("docs", dim=4, model="m")
    store.upsert("docs", [section(i) for i in range(3)])
    refused = rf"top_k must be an int from 1 to {2**62 - 1} \(2\*\*62 - 1\), got {top_k}$"
    with pytest.raises(InputError, match=refused):
        store.search("docs", [1, 0, 0, 0], top_k=top_k, mode=mode, text="section")
    assert len(store.search("docs", [1, 0, 0, 0], top_k=2**62 - 1, mode=mode, text="section")) == 3


def test_count_counts_all_points_or_the_matching_ones(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    assert store.count("docs") == 0
    store.upsert("docs", [section(i) for i in range(7)])
    assert store.count("docs") == 7
    assert store.count("docs", {"doc_id": "d0"}) == 3


def test_a_missing_collection_is_reported_with_the_existing_ones(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    calls = {
        "search": lambda: store.search("nope", [1, 0, 0, 0]),
        "upsert": lambda: store.upsert("nope", [section(0)]),
        "count": lambda: store.count("nope"),
        "info": lambda: store.collection_info("nope"),
        "scroll": lambda: list(store.scroll_payloads("nope", ["doc_id"])),
        "delete": lambda: store.delete_where("nope", {"doc_id": "d0"}),
    }
    for call in calls.values():
        with pytest.raises(CollectionNotFoundError, match=r"'nope' not found.*existing collections: docs"):
            call()


def test_vectors_of_the_wrong_size_or_with_nan_are_refused_before_the_engine(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    with pytest.raises(InputError, match="3 dimensions.*4-dimensional vectors of model 'm'"):
        store.search("docs", [1.0, 0, 0])
    with pytest.raises(InputError, match="NaN"):
        store.upsert("docs", [Point(point_id("d", 0, "t"), [1.0, np.nan, 0, 0], {}, text="t")])
    with pytest.raises(InputError, match="not a UUID"):
        store.upsert("docs", [Point("section-1", [1.0, 0, 0, 0], {}, text="t")])
    with pytest.raises(InputError, match="no text for its BM25 vector"):
        store.upsert("docs", [Point(point_id("d", 0, "t"), [1.0, 0, 0, 0], {})])
    assert store.count("docs") == 0


UNSTORABLE_PAYLOADS = {
    "an integer past 64 bits": (2**64, r"\['v'\] is the integer 18446744073709551616, outside the 64 bits"),
    "NaN": (float("nan"), r"\['v'\] is nan, which JSON cannot hold"),
    "infinity in a list": ([1.0, float("inf")], r"\['v'\]\[1\] is inf"),
    "bytes": (b"ab", r"\['v'\] is a bytes"),
    "a set": ({"a"}, r"\['v'\] is a set"),
    "a date": (datetime.date(2020, 1, 1), r"\['v'\] is a date"),
    "a numpy datetime": (np.datetime64("2020-01-01"), r"\['v'\] is a date"),
    "a key that is not a string": ({1: "a"}, r"\['v'\] has the key 1; payload keys must be strings"),
    "a lone surrogate": ({"w": "caf\ud800e"}, r"\['v'\]\['w'\] holds a lone surrogate U\+D800 at position 3"),
}


@pytest.mark.parametrize("value, message", UNSTORABLE_PAYLOADS.values(), ids=UNSTORABLE_PAYLOADS.keys())
def test_a_payload_value_that_json_cannot_hold_is_refused_naming_the_point_and_key(
    store: Store, value, message: str
):
    # Before, each engine did its own thing: Edge rounded 2**64 to a float and turned bytes into a list,
    # qdrant-client kept sets, dates and int keys (converted) and NaN, and Edge refused those cryptically.
    store.ensure_collection("docs", dim=4, model="m")
    pid = point_id("d", 0, "t")
    with pytest.raises(InputError, match=rf"point '{pid}': payload{message}"):
        store.upsert("docs", [section(0), Point(pid, [1.0, 0, 0, 0], {"v": value}, text="t")])
    assert store.count("docs") == 0


class Label(str):
    """A str subclass, as an application's own types are."""


class Level(enum.IntEnum):
    HIGH = 2


def test_numpy_values_subclasses_and_tuples_in_a_payload_are_stored_as_plain_json_on_both_engines(
    store: Store,
):
    store.ensure_collection("docs", dim=4, model="m")
    payload = {
        "text": np.str_("t"),
        "n": np.int64(7),
        "x": np.float32(1.5),
        "ok": np.bool_(True),
        "pair": (1, 2),
        "row": np.array([0.5, 2.0]),
        "big": 2**64 - 1,
        "label": Label("café"),
        "level": Level.HIGH,
        "nested": {"words": ["naïve", Label("x")], "at": Level.HIGH},
    }
    store.upsert("docs", [Point(point_id("d", 0, "t"), [1.0, 0, 0, 0], payload)])
    [(_, stored)] = store.scroll_payloads("docs", list(payload))
    assert stored == {
        "text": "t",
        "n": 7,
        "x": 1.5,
        "ok": True,
        "pair": [1, 2],
        "row": [0.5, 2.0],
        "big": 2**64 - 1,
        "label": "café",
        "level": 2,
        "nested": {"words": ["naïve", "x"], "at": 2},
    }
    assert [type(stored[key]) for key in ("n", "x", "ok", "label", "level")] == [int, float, bool, str, int]
    assert store.count("docs", {"ok": True}) == 1


def test_open_needs_exactly_one_of_path_and_url(tmp_path: Path):
    with pytest.raises(InputError, match="exactly one"):
        Store.open()
    with pytest.raises(InputError, match="exactly one"):
        Store.open(path=tmp_path, url="http://localhost:6333")


def test_a_closed_store_refuses_calls(tmp_path: Path):
    store = Store.open(path=tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.collections()


def test_a_search_that_outlives_its_store_reopens_no_shard_without_the_folder_lock(tmp_path: Path):
    # A thread past the Store's closed check when another closes it reaches the engine afterwards;
    # the engine loaded the shard again, holding it with the folder's lock already handed back.
    store = Store.open(path=tmp_path / "db")
    store.ensure_collection("docs", dim=4, model="m")
    store.upsert("docs", [section(0)])
    engine = store._engine
    store.close()
    with pytest.raises(StoreError, match="closed meanwhile"):
        engine.count("docs", [])
    with Store.open(path=tmp_path / "db") as reopened:
        assert reopened.count("docs") == 1


def test_a_folder_held_by_this_process_is_locked_for_a_second_process(folder_store: Store, tmp_path: Path):
    script = (
        "import sys\n"
        "from ragkit.errors import StoreError\n"
        "from ragkit.store import Store\n"
        "try:\n"
        "    Store.open(path=sys.argv[1])\n"
        "except StoreError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(StoreLockedError.__name__)
    assert str(tmp_path / "db") in done.stdout
    assert "another ragkit process" in done.stdout
    assert "`ragkit serve`" in done.stdout
    assert "--url" in done.stdout


def test_a_folder_open_in_this_process_is_refused_to_a_second_store_saying_so(tmp_path: Path):
    # It said "in use by another ragkit process (for example a running `ragkit serve`)".
    with (
        Store.open(path=tmp_path / "db"),
        pytest.raises(StoreLockedError, match="already open in this process, by another Store"),
    ):
        Store.open(path=tmp_path / "db" / ".." / "db")
    with Store.open(path=tmp_path / "db") as reopened:
        assert reopened.collections() == []


def test_threads_can_share_one_embedded_store(store: Store):
    store.ensure_collection("docs", dim=4, model="m")

    def work(worker: int) -> int:
        points = [section(i, worker=worker) for i in range(worker * 40, worker * 40 + 40)]
        for chunk in range(0, 40, 10):
            store.upsert("docs", points[chunk : chunk + 10])
            store.search("docs", [1, 0, 0, 0], top_k=5)
        return store.count("docs", {"worker": worker})

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(4))) == [40] * 4
    assert store.count("docs") == 160


def test_an_unreachable_server_fails_after_the_retries_with_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(StoreError) as failure:
        Store.open(url=url, retries=2, backoff=0.01, timeout=2)
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert url in message
    assert "failed 3 times" in message
    assert "server is running" in message


def test_a_server_indexes_by_itself_so_nothing_waits_for_a_build(tmp_path: Path):
    with Store.open(url=":memory:") as store:
        store.ensure_collection("docs", dim=4, model="m")
        store.upsert("docs", [section(i) for i in range(6)])
        assert store.unindexed("docs") == 0
        assert store.build_index("docs") >= 0 and store.count("docs") == 6


def test_the_index_count_and_build_of_a_missing_collection_name_it(store: Store):
    store.ensure_collection("docs", dim=4, model="m")
    for call in (store.unindexed, store.build_index):
        with pytest.raises(
            CollectionNotFoundError, match=r"collection 'nope' not found .*existing collections: docs"
        ):
            call("nope")


def test_a_server_create_cut_short_by_a_transient_failure_is_retried_to_the_end(monkeypatch):
    # Fault injection on the real in-memory engine: its first payload index fails as a dropped
    # connection would, after the collection itself was made.
    with Store.open(url=":memory:", backoff=0.01) as store:
        client = store._engine._client
        indexed: list[str] = []
        real_index = client.create_payload_index

        def index_once_broken(name: str, field_name: str, **options):
            if not indexed:
                indexed.append("(failed)")
                raise ConnectionError("connection reset by peer")
            indexed.append(field_name)
            return real_index(name, field_name=field_name, **options)

        monkeypatch.setattr(client, "create_payload_index", index_once_broken)
        info = store.ensure_collection("docs", dim=4, model="m")
        assert indexed == ["(failed)", "doc_id", "source"]
        assert info.schema.indexes == {"doc_id": "keyword", "source": "keyword"}


def test_two_writers_declaring_different_indexes_on_a_server_both_keep_theirs(monkeypatch):
    # Another process declares `year` while this one is creating its `lang` index: the real in-memory
    # engine's create_payload_index runs the other writer first.
    with Store.open(url=":memory:") as store:
        store.ensure_collection("docs", dim=4, model="m")
        client = store._engine._client
        real_index = client.create_payload_index

        def another_writer_adds_year_first(name: str, field_name: str, **options):
            if field_name == "lang":
                store.ensure_collection(
                    "docs", dim=4, model="m", options=CollectionOptions(indexes={"year": "integer"})
                )
            return real_index(name, field_name=field_name, **options)

        monkeypatch.setattr(client, "create_payload_index", another_writer_adds_year_first)
        store.ensure_collection(
            "docs", dim=4, model="m", options=CollectionOptions(indexes={"lang": "keyword"})
        )
        expected = {"doc_id": "keyword", "source": "keyword", "lang": "keyword", "year": "integer"}
        assert store.schema("docs").indexes == expected
