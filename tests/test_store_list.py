"""`ragkit store list` shows every collection of a store as it was built, without opening any model; it
and the other commands that only read a store refuse a store folder that does not exist instead of
creating an empty one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ragkit.cli import main
from ragkit.store import CollectionOptions, Point, Store, point_id


def points(n: int) -> list[Point]:
    vectors = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return [
        Point(point_id("d", i, f"section {i}"), vectors[i], {"doc_id": "d", "text": f"section {i}"})
        for i in range(n)
    ]


def write_store(folder: Path) -> None:
    with Store.open(path=folder) as store:
        store.ensure_collection("docs", dim=4, model="tiny-model")
        store.upsert("docs", points(7))
        store.ensure_collection(
            "notes",
            dim=4,
            model="tiny-model",
            options=CollectionOptions(indexes={"lang": "keyword"}, quantize="int8"),
        )


def listing(capsys, *argv: str) -> dict[str, dict]:
    assert main(["store", "list", *argv, "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_each_collection_is_listed_with_its_points_model_and_what_it_was_built_with(tmp_path: Path, capsys):
    write_store(tmp_path / "db")
    rows = listing(capsys, "--store", str(tmp_path / "db"))
    assert sorted(rows) == ["docs", "notes"]
    assert rows["docs"]["points"] == 7 and rows["notes"]["points"] == 0
    assert rows["docs"]["model"] == "tiny-model" and rows["docs"]["dim"] == 4
    assert rows["docs"]["bm25"]["language"] == "english"
    assert rows["notes"]["indexes"]["lang"] == "keyword" and "lang" not in rows["docs"]["indexes"]
    assert rows["notes"]["quantize"] == "int8" and rows["docs"]["quantize"] is None


def test_the_unindexed_count_falls_to_zero_once_the_index_is_built(tmp_path: Path, capsys):
    write_store(tmp_path / "db")
    assert listing(capsys, "--store", str(tmp_path / "db"))["docs"]["unindexed"] == 7
    with Store.open(path=tmp_path / "db") as store:
        store.build_index("docs")
    assert listing(capsys, "--store", str(tmp_path / "db"))["docs"]["unindexed"] == 0


def test_the_table_has_a_row_per_collection_and_names_an_unreadable_one_with_its_reason(
    tmp_path: Path, capsys
):
    write_store(tmp_path / "db")
    (tmp_path / "db" / "collections" / "notes" / "schema.json").write_text('{"ragkit_schema": 99}')
    assert main(["store", "list", "--store", str(tmp_path / "db")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(": 2 collection(s)")
    assert out[1].split()[:5] == ["NAME", "POINTS", "UNINDEXED", "MODEL", "DIM"]
    assert out[2].split()[:5] == ["docs", "7", "7", "tiny-model", "4"]
    assert out[3].startswith("unreadable 'notes': ") and "was not created by ragkit" in out[3]


def test_a_collection_folder_that_lost_its_schema_is_listed_as_unreadable(tmp_path: Path, capsys):
    write_store(tmp_path / "db")
    (tmp_path / "db" / "collections" / "docs" / "schema.json").unlink()
    rows = listing(capsys, "--store", str(tmp_path / "db"))
    assert sorted(rows) == ["docs", "notes"]
    assert "has no schema.json" in rows["docs"]["error"] and rows["notes"]["points"] == 0


def test_a_missing_store_folder_is_refused_by_name_and_not_created(tmp_path: Path, capsys):
    # by every command that only reads or maintains a store; ingest and serve create theirs
    missing = tmp_path / "typo"
    for command in (
        ["store", "list"],
        ["store", "index", "--collection", "docs"],
        ["search", "q"],
        ["query", "q"],
    ):
        assert main([*command, "--store", str(missing)]) == 2
        assert f"{missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_a_server_store_is_listed_through_the_server_request_path(capsys):
    assert main(["store", "list", "--url", ":memory:"]) == 0
    assert capsys.readouterr().out.strip().endswith(": 0 collection(s)")
