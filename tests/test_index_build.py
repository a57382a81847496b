"""Building the index of an embedded collection, or adding a payload index to it, never freezes search.

Edge's `optimize` holds the GIL while it runs, and so does adding a payload index to a shard that holds
points, so the engine does both in a child process on a copy of the shard and swaps the copy in between
two searches; writes wait for them. A crash at any step leaves a folder that opens whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import qdrant_edge as edge

from ragkit.store import CollectionOptions, Point, Store, point_id, rebuild

DIM = 384
POINTS = 12_000  # 18 MB of vectors: past the size below which segments stay unindexed


def points(vectors: np.ndarray, doc: str = "d") -> list[Point]:
    return [
        Point(point_id(doc, i, str(i)), v, {"text": f"note {i} on the garden", "doc_id": f"{doc}{i % 40}"})
        for i, v in enumerate(vectors)
    ]


def ranked(store: Store, queries: np.ndarray, *, exact: bool = True) -> list[list[str]]:
    return [[hit.id for hit in store.search("docs", q, top_k=10, mode="dense", exact=exact)] for q in queries]


def test_searches_are_answered_while_the_index_is_built_and_a_write_waits_for_it(tmp_path: Path):
    rng = np.random.default_rng(7)
    queries = rng.normal(size=(5, DIM))
    late = points(rng.normal(size=(1, DIM)), doc="late")
    with Store.open(path=tmp_path) as store:
        for name, count in (("docs", POINTS), ("other", 3)):
            store.ensure_collection(name, dim=DIM, model="m")
            store.upsert(name, points(rng.normal(size=(count, DIM)).astype(np.float32)))
    with Store.open(path=tmp_path) as store:  # reopened: "other" is loaded on its first read, below
        before = ranked(store, queries)
        assert ranked(store, queries, exact=False) == before  # no index yet: searched exactly

        build = threading.Thread(target=store.build_index, args=("docs",))
        write = threading.Thread(target=store.upsert, args=("docs", late))
        failures: list[BaseException] = []

        def count_meanwhile() -> None:  # a second reader, so that reads overlap the swap
            while build.is_alive():
                try:
                    store.count("docs")
                except BaseException as exc:
                    failures.append(exc)

        counting = threading.Thread(target=count_meanwhile)
        build.start()
        time.sleep(0.2)  # the build has the write lock: the write waits for it
        write.start()
        counting.start()
        started = time.monotonic()
        assert store.count("other") == 3  # loading another collection does not wait for this build
        first_read_of_other = time.monotonic() - started
        assert build.is_alive(), "the first read of another collection waited for this build"
        latencies = []
        while build.is_alive():
            started = time.monotonic()
            assert store.search("docs", queries[0], top_k=5, mode="hybrid", text="garden")
            latencies.append(time.monotonic() - started)
        for thread in (build, write, counting):
            thread.join()

        print(
            f"\n{len(latencies)} searches during the build, slowest {max(latencies) * 1000:.0f} ms; "
            f"the first read of another collection (loading it) {first_read_of_other * 1000:.0f} ms"
        )
        assert failures == []
        assert len(latencies) > 10
        assert max(latencies) < 1.0
        assert store.count("docs") == POINTS + 1
        assert ranked(store, queries) == before  # the late point is not near these queries
        # The rebuilt shard is in use: its HNSW graph answers, approximately on random vectors.
        assert ranked(store, queries, exact=False) != before
    leftovers = sorted(p.name for p in (tmp_path / "collections" / "docs").iterdir())
    assert leftovers == ["schema.json", "shard", "unindexed.json"]


def languages(vectors: np.ndarray, doc: str = "d") -> list[Point]:
    """Points with a `lang` field, which no collection indexes unless it is declared."""
    return [
        Point(p.id, p.vector, {**p.payload, "lang": f"l{i % 7}"}) for i, p in enumerate(points(vectors, doc))
    ]


def rebuilding_children() -> list[psutil.Process]:
    """This process's children that are changing a shard copy (running `ragkit.store.rebuild.main`)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "ragkit.store.rebuild" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:  # it ended meanwhile
            continue
    return found


def indexed_fields(shard: Path) -> set[str]:
    loaded = edge.EdgeShard.load(str(shard))
    try:
        return set(loaded.info().payload_schema)
    finally:
        loaded.close()


def test_searches_are_answered_while_a_payload_index_is_added_to_a_collection_with_points(tmp_path: Path):
    # Adding the index in this process held the GIL for as long as the points took (60,000 points: a
    # keyword and an integer index stopped every other thread for 0.5 s each, the HTTP service's searches
    # with them). Now a child adds it to a copy of the shard while this process goes on answering.
    rng = np.random.default_rng(11)
    query = rng.normal(size=DIM)
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=DIM, model="m")
        store.upsert("docs", languages(rng.normal(size=(POINTS, DIM)).astype(np.float32)))
    with Store.open(path=tmp_path) as store:
        finished: list[str] = []
        declared = CollectionOptions(indexes={"lang": "keyword"})

        def add() -> None:
            store.ensure_collection("docs", dim=DIM, model="m", options=declared)
            finished.append("index")

        def write() -> None:
            store.upsert("docs", languages(rng.normal(size=(1, DIM)).astype(np.float32), doc="late"))
            finished.append("write")

        adding, writing = threading.Thread(target=add), threading.Thread(target=write)
        adding.start()
        answered_while_a_child_adds_it, latencies = 0, []
        while adding.is_alive():
            started = time.monotonic()
            assert len(store.search("docs", query, top_k=5, mode="hybrid", text="garden")) == 5
            latencies.append(time.monotonic() - started)
            if rebuilding_children():
                answered_while_a_child_adds_it += 1
                if writing.ident is None:
                    writing.start()  # the child runs under the write lock: the write waits for it
        adding.join()

        print(
            f"\n{answered_while_a_child_adds_it} searches answered while the child added the index, "
            f"slowest of all {max(latencies) * 1000:.0f} ms"
        )
        assert answered_while_a_child_adds_it > 0, "the index was added in this process, holding the GIL"
        writing.join()
        assert finished == ["index", "write"]
        assert store.schema("docs").indexes["lang"] == "keyword"
        assert store.count("docs") == POINTS + 1
        assert store.count("docs", {"lang": "l3"}) == len([i for i in range(POINTS) if i % 7 == 3])
        assert store.unindexed("docs") == POINTS + 1  # a payload index is not the vector index's build
    collection = tmp_path / "collections" / "docs"
    assert "lang" in indexed_fields(collection / rebuild.SHARD)
    assert sorted(p.name for p in collection.iterdir()) == ["schema.json", "shard", "unindexed.json"]


def test_a_payload_index_of_an_empty_collection_is_added_without_a_copy(tmp_path: Path, monkeypatch):
    copies: list[Path] = []
    copy_shard = rebuild.copy_shard
    monkeypatch.setattr(
        rebuild, "copy_shard", lambda source, target: copies.append(target) or copy_shard(source, target)
    )
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.ensure_collection(
            "docs", dim=8, model="m", options=CollectionOptions(indexes={"lang": "keyword"})
        )
        assert copies == [] and store.schema("docs").indexes["lang"] == "keyword"
        store.upsert("docs", languages(np.random.default_rng(12).normal(size=(20, 8)).astype(np.float32)))
        assert store.count("docs", {"lang": "l1"}) == 3
    assert "lang" in indexed_fields(tmp_path / "collections" / "docs" / rebuild.SHARD)


def test_several_payload_indexes_declared_at_once_are_added_in_one_copy_of_the_shard(
    tmp_path: Path, monkeypatch
):
    # Each index made a copy of its own, and a copy is the size of the shard (2.9 GiB at a million points).
    copies: list[Path] = []
    copy_shard = rebuild.copy_shard
    monkeypatch.setattr(
        rebuild, "copy_shard", lambda source, target: copies.append(target) or copy_shard(source, target)
    )
    vectors = np.random.default_rng(13).normal(size=(40, 8)).astype(np.float32)
    declared = CollectionOptions(indexes={"lang": "keyword", "section_index": "integer"})
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", languages(vectors))
        info = store.ensure_collection("docs", dim=8, model="m", options=declared)
        assert len(copies) == 1
        assert {key: info.schema.indexes[key] for key in declared.indexes} == declared.indexes
        assert store.count("docs", {"lang": "l2"}) == len([i for i in range(40) if i % 7 == 2])
    assert {"lang", "section_index"} <= indexed_fields(tmp_path / "collections" / "docs" / rebuild.SHARD)


def test_a_crash_at_any_step_of_adding_a_payload_index_leaves_a_store_that_opens_whole(tmp_path: Path):
    collection = tmp_path / "collections" / "docs"
    shard, copy, old = collection / rebuild.SHARD, collection / rebuild.NEXT, collection / rebuild.OLD
    declared = CollectionOptions(indexes={"lang": "keyword"})
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", languages(np.random.default_rng(13).normal(size=(50, 8)).astype(np.float32)))

    def reopened() -> tuple[int, bool]:
        """The points, and whether schema.json records the index."""
        with Store.open(path=tmp_path) as store:
            count, recorded = store.count("docs"), "lang" in store.schema("docs").indexes
        assert sorted(p.name for p in collection.iterdir()) == ["schema.json", "shard", "unindexed.json"]
        return count, recorded

    # Killed once the child had indexed the copy, before the swap: the copy is dropped, nothing recorded.
    rebuild.copy_shard(shard, copy)
    assert rebuild.index_copy(copy, {"lang": "keyword"})
    assert reopened() == (50, False)
    assert "lang" not in indexed_fields(shard)
    # Killed inside the swap: the indexed copy becomes the shard; schema.json does not record it yet.
    rebuild.copy_shard(shard, copy)
    rebuild.index_copy(copy, {"lang": "keyword"})
    shard.rename(old)
    assert reopened() == (50, False)
    assert "lang" in indexed_fields(shard)
    # Declaring the index again adds it to the shard that already has it, and records it.
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m", options=declared)
        assert store.count("docs", {"lang": "l2"}) == 7
    assert reopened() == (50, True)


def test_the_store_counts_the_points_written_since_the_last_build_across_reopening(
    tmp_path: Path, monkeypatch
):
    vectors = np.random.default_rng(3).normal(size=(30, 8)).astype(np.float32)
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        assert store.unindexed("docs") == 0
        store.upsert("docs", points(vectors))
        store.upsert("docs", points(vectors[:10]))  # rewritten points are written again
        # Deleted points stay in the index until a build leaves them out.
        store.delete_points("docs", [point_id("d", 0, "0")])
        store.delete_where("docs", {"doc_id": "d1"})
        store.delete_where("docs", {"doc_id": "no such document"})
        assert store.unindexed("docs") == 42
    with Store.open(path=tmp_path) as store:
        assert store.unindexed("docs") == 42
        store.build_index("docs")
        assert store.unindexed("docs") == 0
    copies: list[Path] = []
    copy_shard = rebuild.copy_shard
    monkeypatch.setattr(
        rebuild, "copy_shard", lambda source, target: copies.append(target) or copy_shard(source, target)
    )
    with Store.open(path=tmp_path) as store:
        assert store.unindexed("docs") == 0
        store.build_index("docs")  # nothing written since the last build: no copy of the shard
        assert copies == []
        store.upsert("docs", points(vectors[:5]))
        store.build_index("docs")
        assert len(copies) == 1 and store.unindexed("docs") == 0


@pytest.mark.parametrize("left", ["missing", "empty", "damaged"])
def test_a_collection_without_a_readable_count_counts_all_its_points_as_unindexed(tmp_path: Path, left: str):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", points(np.random.default_rng(4).normal(size=(30, 8)).astype(np.float32)))
        store.build_index("docs")
    count_file = tmp_path / "collections" / "docs" / "unindexed.json"
    if left == "missing":  # as an earlier ragkit left it
        count_file.unlink()
    else:
        count_file.write_text("" if left == "empty" else '{"points": "many"')
    with Store.open(path=tmp_path) as store:
        assert store.unindexed("docs") == 30
        store.upsert("docs", points(np.random.default_rng(5).normal(size=(2, 8)).astype(np.float32), "e"))
        assert store.unindexed("docs") == 32
        store.build_index("docs")
        assert store.unindexed("docs") == 0


def test_a_build_with_nothing_to_do_changes_nothing(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", points(np.random.default_rng(1).normal(size=(30, 8)).astype(np.float32)))
        store.build_index("docs")
        store.build_index("docs")
        assert store.count("docs") == 30 and store.unindexed("docs") == 0
    assert not (tmp_path / "collections" / "docs" / rebuild.NEXT).exists()


def test_a_crash_at_any_step_of_a_build_leaves_a_store_that_opens_whole(tmp_path: Path):
    vectors = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    collection = tmp_path / "collections" / "docs"
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", points(vectors))
    shard, copy, old = collection / rebuild.SHARD, collection / rebuild.NEXT, collection / rebuild.OLD

    def reopened() -> int:
        with Store.open(path=tmp_path) as store:
            count = store.count("docs")
        assert sorted(p.name for p in collection.iterdir()) == ["schema.json", "shard", "unindexed.json"]
        return count

    # Killed while copying or building: the copy is unfinished, the shard untouched.
    rebuild.copy_shard(shard, copy)
    (copy / "segments").rename(copy / "half-written")
    assert reopened() == 50
    # Killed inside the swap, the old shard moved away and the finished copy not yet moved in.
    rebuild.copy_shard(shard, copy)
    shard.rename(old)
    assert reopened() == 50
    # Killed after the copy moved in, before the old shard was removed.
    rebuild.copy_shard(shard, old)
    assert reopened() == 50


def test_the_child_that_builds_an_index_ends_with_the_process_that_started_it(tmp_path: Path):
    # An orphaned build would go on writing the copy that the next process to open the collection
    # removes and copies anew. 12,000 points take the child seconds to index, so it is killed mid-build.
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=DIM, model="m")
        store.upsert("docs", points(np.random.default_rng(8).normal(size=(POINTS, DIM)).astype(np.float32)))
    collection = tmp_path / "collections" / "docs"
    rebuild.copy_shard(collection / rebuild.SHARD, collection / rebuild.NEXT)
    build_the_copy = "import sys; from ragkit.store import rebuild; rebuild.optimize_copy(sys.argv[1])"
    starter = subprocess.Popen([sys.executable, "-c", build_the_copy, str(collection / rebuild.NEXT)])
    deadline = time.monotonic() + 60
    while not (children := psutil.Process(starter.pid).children()):
        assert time.monotonic() < deadline and starter.poll() is None, "the build's child did not start"
        time.sleep(0.01)
    time.sleep(1.0)  # past its start, into the build
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    child, deadline = children[0], time.monotonic() + 2
    while not ended(child):
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("the index build's child outlived the process that started it")
        time.sleep(0.01)
    with Store.open(path=tmp_path) as store:  # the unfinished copy is cleared, the shard untouched
        assert store.count("docs") == POINTS
    assert not (collection / rebuild.NEXT).exists()


def test_the_child_that_builds_an_index_runs_the_ragkit_of_the_process_that_started_it(tmp_path: Path):
    # A process running ragkit from a source tree, with another ragkit found first on the path its
    # children start with, builds the index with its own: the other one here cannot be imported.
    other = tmp_path / "other" / "ragkit"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other ragkit')\n")
    source_tree = Path(__file__).resolve().parents[1]
    build = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import numpy as np
        from ragkit.store import Point, Store, point_id

        with Store.open(path=sys.argv[2]) as store:
            store.ensure_collection("docs", dim=8, model="m")
            vectors = np.arange(40, dtype=np.float32).reshape(5, 8)
            store.upsert("docs", [Point(point_id("d", i, "x"), v, {"text": "x"}) for i, v in enumerate(vectors)])
            store.build_index("docs")
            print(store.unindexed("docs"))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(other.parent)}
    done = subprocess.run(
        [sys.executable, "-c", build, str(source_tree), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0"]


def ended(process: psutil.Process) -> bool:
    """Gone, or a zombie that its new parent has not reaped (an orphan's may never)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
