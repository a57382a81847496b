"""What searches see while an embedded collection's index is built (README "Engines").

Two builds of the same collection, each with a thread searching in a loop meanwhile, printed side by side:
Edge's own `optimize()` called in this process, which holds the GIL for as long as it runs, and ragkit's
`Store.build_index`, which builds a copy of the shard in a child process and swaps it in. Then each build
again with nobody searching, for its cost alone. Prints a table; asserts nothing.

    python -m bench.index_build                  # 40,000 points of 384 dimensions, about 3 minutes here
    python -m bench.index_build --points 100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ragkit.store import Point, Store, point_id

DIM = 384


def build_store(folder: Path, vectors: np.ndarray) -> Store:
    shutil.rmtree(folder, ignore_errors=True)
    store = Store.open(path=folder)
    store.ensure_collection("c", dim=DIM, model="m")
    store.upsert(
        "c",
        (
            Point(point_id("d", i, str(i)), v, {"text": "a garden note", "doc_id": f"d{i % 40}"})
            for i, v in enumerate(vectors)
        ),
    )
    return store


def in_process(store: Store) -> Callable[[], None]:
    shard = store._engine._shard("c")  # Edge's own call, as a user of qdrant-edge-py would make it
    return lambda: (shard.optimize(), shard.flush())


def beside(store: Store) -> Callable[[], None]:
    return lambda: store.build_index("c")


def searched_during(store: Store, build: Callable[[], None], query: np.ndarray) -> tuple[float, list[float]]:
    """The build's seconds, and the latency of every search a second thread completed while it ran."""
    finished = threading.Event()
    took: list[float] = []

    def run() -> None:
        started = time.perf_counter()
        build()
        took.append(time.perf_counter() - started)
        finished.set()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.1)  # let the build begin
    latencies = []
    while not finished.is_set():
        started = time.perf_counter()
        store.search("c", query, top_k=5, mode="hybrid", text="garden")
        latencies.append(time.perf_counter() - started)
    thread.join()
    return took[0], latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=40_000)
    args = parser.parse_args()
    vectors = np.random.default_rng(0).standard_normal((args.points, DIM)).astype(np.float32)
    rows: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, how in (("in-process optimize()", in_process), ("Store.build_index (beside)", beside)):
            store = build_store(Path(tmp) / "during", vectors)
            seconds, latencies = searched_during(store, how(store), vectors[1])
            store.close()
            store = build_store(Path(tmp) / "alone", vectors)
            started = time.perf_counter()
            how(store)()
            alone = time.perf_counter() - started
            store.close()
            answered = len(latencies)
            rows[label] = [
                f"{seconds:.1f} s",
                f"{alone:.1f} s",
                f"{answered:,}",
                f"{1000 * statistics.median(latencies):.1f} ms" if answered else "–",
                f"{1000 * max(latencies):.0f} ms" if answered else "–",
            ]
    heads = [
        "build, searched meanwhile",
        "build alone",
        "searches answered during it",
        "their p50",
        "slowest",
    ]
    print(f"{args.points:,} points of {DIM} dimensions, one thread searching (hybrid) during the build\n")
    print("| | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for i, head in enumerate(heads):
        print(f"| {head} | " + " | ".join(cells[i] for cells in rows.values()) + " |")


if __name__ == "__main__":
    main()
