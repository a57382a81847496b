"""Deleting a collection removes it whole, leaves every other collection as it was, and is how a
collection is built again with settings that an existing one keeps (BM25, quantization, model)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ragkit.cli import main
from ragkit.errors import CollectionNotFoundError, InputError
from ragkit.store import Bm25Settings, CollectionOptions, Point, SchemaError, Store, point_id


def points(n: int, dim: int = 4) -> list[Point]:
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return [
        Point(point_id("d", i, f"section {i}"), vectors[i], {"doc_id": "d", "text": f"section {i}"})
        for i in range(n)
    ]


def write(store: Store, name: str, n: int, **options) -> None:
    store.ensure_collection(name, dim=4, model="m", options=CollectionOptions(**options))
    store.upsert(name, points(n))


def test_a_deleted_collection_is_gone_and_the_others_keep_their_points(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 5)
        write(store, "notes", 3)
        store.delete_collection("docs")
        assert store.collections() == ["notes"] and store.count("notes") == 3
        with pytest.raises(CollectionNotFoundError, match="'docs' not found .*existing collections: notes"):
            store.count("docs")
    assert sorted(p.name for p in (tmp_path / "collections").iterdir()) == ["notes"]
    assert not (tmp_path / ".dropping").exists()
    with Store.open(path=tmp_path) as store:
        assert store.collections() == ["notes"] and store.count("notes") == 3


def test_a_collection_is_built_again_with_other_settings_once_deleted(tmp_path: Path):
    no_stemming = CollectionOptions(bm25=Bm25Settings(stemming=False))
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 5)
        with pytest.raises(InputError, match=r"BM25 settings are fixed .*ragkit store delete docs"):
            store.ensure_collection("docs", dim=4, model="m", options=no_stemming)
        store.delete_collection("docs")
        # the schema this Store had read is forgotten too: another model and size are accepted
        store.ensure_collection("docs", dim=8, model="other", options=no_stemming)
        store.upsert("docs", points(2, dim=8))
    with Store.open(path=tmp_path) as store:
        info = store.collection_info("docs")
        assert (info.model, info.dim, info.points) == ("other", 8, 2)
        assert info.schema is not None and info.schema.bm25 == Bm25Settings(stemming=False)


def test_deleting_a_collection_that_is_not_there_names_the_ones_that_are(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 1)
        with pytest.raises(CollectionNotFoundError, match="'nope' not found .*existing collections: docs"):
            store.delete_collection("nope")
        assert store.count("docs") == 1


def test_a_collection_folder_that_lost_its_schema_can_be_deleted(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 5)
    (tmp_path / "collections" / "docs" / "schema.json").unlink()
    with Store.open(path=tmp_path) as store:
        assert store.collections() == ["docs"]
        store.delete_collection("docs")
        assert store.collections() == []
        write(store, "docs", 2)  # and the name is free for a new collection
        assert store.count("docs") == 2


def test_what_a_delete_cut_short_left_is_removed_when_the_folder_is_next_opened(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 5)
    # A delete killed after its rename: the collection is out of collections/, its files not yet removed.
    (tmp_path / ".dropping").mkdir()
    (tmp_path / "collections" / "docs").rename(tmp_path / ".dropping" / "docs")
    with Store.open(path=tmp_path) as store:
        assert store.collections() == []
    assert not (tmp_path / ".dropping").exists()


def test_searches_of_other_collections_go_on_while_one_is_deleted(tmp_path: Path):
    query = np.ones(4, dtype=np.float32)
    with Store.open(path=tmp_path) as store:
        write(store, "docs", 50)
        write(store, "notes", 50)
        stop = threading.Event()
        answered: list[int] = []
        failures: list[BaseException] = []

        def search() -> None:
            while not stop.is_set():
                try:
                    answered.append(len(store.search("notes", query, top_k=3)))
                except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                    failures.append(exc)
                    return

        searcher = threading.Thread(target=search)
        searcher.start()
        try:
            store.delete_collection("docs")
            before = len(answered)
            while len(answered) < before + 5 and searcher.is_alive():
                stop.wait(0.01)
        finally:
            stop.set()
            searcher.join(timeout=30)
        assert not failures and set(answered) == {3}
        assert store.collections() == ["notes"]


def test_on_a_server_ragkit_deletes_its_own_collections_and_refuses_another_programs():
    with Store.open(url=":memory:") as store:
        write(store, "docs", 3)
        client = store._engine._client  # another program's collection, made beside ragkit's
        client.create_collection("theirs", vectors_config={})
        with pytest.raises(SchemaError, match="'theirs' .* was not created by ragkit"):
            store.delete_collection("theirs")
        store.delete_collection("docs")
        assert store.collections() == ["theirs"]


def test_the_command_deletes_the_named_collection_and_says_how_many_points_went(tmp_path: Path, capsys):
    with Store.open(path=tmp_path / "db") as store:
        write(store, "docs", 7)
        write(store, "notes", 1)
    assert main(["store", "delete", "docs", "--store", str(tmp_path / "db")]) == 0
    assert capsys.readouterr().out.strip() == (
        f"deleted collection 'docs' (7 points) from the local store {tmp_path / 'db'}"
    )
    assert main(["store", "delete", "docs", "--store", str(tmp_path / "db")]) == 2
    assert "'docs' not found" in capsys.readouterr().err
    assert main(["store", "delete", "docs", "--store", str(tmp_path / "typo")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    with Store.open(path=tmp_path / "db") as store:
        assert store.collections() == ["notes"]
