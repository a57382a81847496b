"""Store engines: ragkit's embedded store (Qdrant Edge, through `ragkit.store.Store`) against qdrant-client's
local mode (`QdrantClient(path=...)`, the embedded Qdrant that LangChain and LlamaIndex users get).

Prints figures side by side with ratios; asserts nothing about time (the machines it runs on are shared
and noisy). Both engines get the same clustered synthetic sections (bench/vectors.py: 384-d unit vectors
around a few hundred topics, texts drawn from each topic's words, ragkit-shaped payloads) and do the same
work: each point is stored with its dense vector and its BM25 sparse vector (IDF applied by the engine),
computed from its text by the same code; hybrid search fuses both with ragkit's RRF in the engine.
Each engine runs in its own process, so that peak memory is its own.

Measured: upsert points/s, and those of the same upserts made with qdrant_edge directly (the engine's own
ceiling on this machine, without ragkit's checks); index build seconds (Edge's `optimize`; local mode has no index, it scans);
search p50/p95 in dense, hybrid and two filtered searches (one document's sections, and a tenth of the
collection by a keyword-indexed field); recall@10 of the index against exact search (`exact=True` on Edge;
local mode is exact by construction, so its figure checks that both engines agree); peak RSS; folder size.

    python -m bench.store                          # 10,000 and 100,000 points (about 10 minutes here)
    python -m bench.store --sizes 10000 --quantize int8
    python -m bench.store --sizes 1000000 --no-local    # Edge alone at a million points
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench import local_mode, vectors

COLLECTION = "bench"
TOP_K = 10
LOCAL_BATCH = 256
ENGINES = {
    "edge": "Edge (ragkit Store)",
    "edge-int8": "Edge int8",
    "local": "local mode",
}


def folder_bytes(path: Path) -> int:
    """Disk space taken (allocated blocks, as `du` counts), not the apparent size of sparse files."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return 1000 * float(np.percentile(seconds, 50)), 1000 * float(np.percentile(seconds, 95))


def timed(
    search: Callable[[int], list[str]], queries: int, warmup: int, budget: float = float("inf")
) -> tuple[list[float], list[list[str]]]:
    """Seconds per query and the ids each returned, after `warmup` untimed queries; it stops early (after
    at least 5 queries) once `budget` seconds are spent, for engines that take seconds per query."""
    started = time.perf_counter()
    for q in range(min(warmup, queries)):
        search(q)
        if time.perf_counter() - started > budget / 10:
            break
    seconds: list[float] = []
    ids: list[list[str]] = []
    for q in range(queries):
        start = time.perf_counter()
        ids.append(search(q))
        seconds.append(time.perf_counter() - start)
        if len(seconds) >= 5 and sum(seconds) > budget:
            break
    return seconds, ids


class EdgeRunner:
    """ragkit's Store over a folder: what `ragkit ingest` and `ragkit serve` run on."""

    def __init__(self, folder: Path, quantize: str | None) -> None:
        from ragkit.store import CollectionOptions, Store

        self.store = Store.open(path=folder)
        self.store.ensure_collection(
            COLLECTION,
            dim=vectors.DIM,
            model="synthetic",
            options=CollectionOptions(quantize=quantize, indexes={"shelf": "keyword"}),
        )

    def upsert(self, data: vectors.VectorSet, ids: list[str], start: int, stop: int) -> None:
        from ragkit.store import Point

        points = (Point(ids[i], data.vectors[i], data.payloads[i]) for i in range(start, stop))
        self.store.upsert(COLLECTION, points)

    def build(self) -> float:
        return self.store.build_index(COLLECTION)

    def search(
        self, vector: np.ndarray, text: str, mode: str, filters: dict | None, exact: bool
    ) -> list[str]:
        hits = self.store.search(
            COLLECTION, vector, top_k=TOP_K, mode=mode, text=text, filters=filters, exact=exact
        )
        return [h.id for h in hits]

    def close(self) -> None:
        self.store.close()


class LocalRunner:
    """qdrant-client's local mode, as LangChain's and LlamaIndex's Qdrant stores use it embedded."""

    def __init__(self, folder: Path) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=str(folder))
        local_mode.create(self.client, COLLECTION, vectors.DIM)
        # No payload indexes: local mode ignores them (it scans every point for every filter).

    def upsert(self, data: vectors.VectorSet, ids: list[str], start: int, stop: int) -> None:
        from ragkit.store import Bm25Settings, bm25

        settings = Bm25Settings()
        for begin in range(start, stop, LOCAL_BATCH):
            batch = []
            for i in range(begin, min(begin + LOCAL_BATCH, stop)):
                sparse = bm25.document_vector(settings, data.texts[i])
                vector = {
                    "dense": data.vectors[i].tolist(),
                    "bm25": self.models.SparseVector(
                        indices=list(sparse.indices), values=list(sparse.values)
                    ),
                }
                batch.append(self.models.PointStruct(id=ids[i], vector=vector, payload=data.payloads[i]))
            self.client.upsert(COLLECTION, batch)

    def fill(self, data: vectors.VectorSet, ids: list[str], start: int) -> None:
        """The points from `start` on, untimed, without local mode's fsync per point (bench/local_mode.py)."""
        with local_mode.unsynced(self.client, COLLECTION):
            self.upsert(data, ids, start, len(ids))

    def build(self) -> float:
        return float("nan")

    def search(
        self, vector: np.ndarray, text: str, mode: str, filters: dict | None, exact: bool
    ) -> list[str]:
        from ragkit.store import Bm25Settings, bm25, schema

        m = self.models
        condition = (
            m.Filter(must=[m.FieldCondition(key=k, match=m.MatchValue(value=v)) for k, v in filters.items()])
            if filters
            else None
        )
        dense = vector.tolist()
        if mode == "dense":
            response = self.client.query_points(
                COLLECTION, query=dense, using="dense", limit=TOP_K, query_filter=condition, with_payload=True
            )
        else:
            sparse = bm25.query_vector(Bm25Settings(), text)
            sparse_query = m.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
            candidates = max(schema.HYBRID_CANDIDATES * TOP_K, schema.HYBRID_MIN_CANDIDATES)
            response = self.client.query_points(
                COLLECTION,
                prefetch=[
                    m.Prefetch(query=dense, using="dense", limit=candidates, filter=condition),
                    m.Prefetch(query=sparse_query, using="bm25", limit=candidates, filter=condition),
                ],
                query=m.RrfQuery(rrf=m.Rrf(k=schema.RRF_K)),
                limit=TOP_K,
                with_payload=True,
            )
        return [str(p.id) for p in response.points]

    def close(self) -> None:
        self.client.close()


def raw_edge_upsert(data_file: str, folder: str) -> float:
    """Points/s of the same upserts made with qdrant_edge directly, in a process of its own: the engine's
    Python binding (building its Points, which converts every payload value), BM25 and the write, one
    flush at the end, and none of ragkit's checks. What the engine allows on this machine, whatever
    ragkit does."""
    import qdrant_edge as edge

    from ragkit.store import Bm25Settings, CollectionOptions, bm25, point_id
    from ragkit.store.edge import INDEX_TYPES, _config
    from ragkit.store.schema import DENSE, SPARSE, Schema

    with open(data_file, "rb") as f:
        data: vectors.VectorSet = pickle.load(f)
    ids = [point_id(p["doc_id"], p["section_index"], p["text"]) for p in data.payloads]
    # The shard ragkit makes for EdgeRunner's collection (its config and payload indexes), so that the
    # engine does the same work per point.
    schema = Schema.build(
        model="synthetic", dim=vectors.DIM, options=CollectionOptions(indexes={"shelf": "keyword"})
    )
    shard = edge.EdgeShard.create(folder, _config(schema))
    for key, kind in schema.indexes.items():
        shard.update(edge.UpdateOperation.create_field_index(key, INDEX_TYPES[kind]))
    model = bm25._model(Bm25Settings())
    started = time.perf_counter()
    for begin in range(0, len(ids), LOCAL_BATCH):
        points = [
            edge.Point(
                ids[i],
                {DENSE: data.vectors[i].tolist(), SPARSE: model.embed_document(data.texts[i])},
                data.payloads[i],
            )
            for i in range(begin, min(begin + LOCAL_BATCH, len(ids)))
        ]
        shard.update(edge.UpdateOperation.upsert_points(points))
    shard.flush()
    pps = len(ids) / (time.perf_counter() - started)
    shard.close()
    return pps


def run_engine(
    engine: str, data_file: str, folder: str, queries: int, warmup: int, local_upserts: int, budget: float
) -> dict[str, Any]:
    """One engine, one size, in a process of its own: write, index, search; every figure it measured."""
    with open(data_file, "rb") as f:
        data: vectors.VectorSet = pickle.load(f)
    from ragkit.store import point_id

    ids = [point_id(p["doc_id"], p["section_index"], p["text"]) for p in data.payloads]
    baseline = psutil.Process().memory_info().rss
    runner: Any = (
        LocalRunner(Path(folder))
        if engine == "local"
        else EdgeRunner(Path(folder), "int8" if engine == "edge-int8" else None)
    )
    out: dict[str, Any] = {}
    timed_points = len(ids) if engine != "local" else min(len(ids), local_upserts)
    started = time.perf_counter()
    runner.upsert(data, ids, 0, timed_points)
    out["upsert_pps"] = timed_points / (time.perf_counter() - started)
    out["upsert_timed"] = timed_points
    if timed_points < len(ids):
        runner.fill(data, ids, timed_points)
    out["build_s"] = runner.build()
    queries = min(queries, len(data.query_vectors))
    rng = np.random.default_rng(1)
    doc_filters = [{"doc_id": data.payloads[int(i)]["doc_id"]} for i in rng.integers(0, len(ids), queries)]
    shelf_filters = [{"shelf": f"shelf-{q % vectors.SOURCES}"} for q in range(queries)]

    def search(
        mode: str, filters: list[dict] | None = None, exact: bool = False
    ) -> Callable[[int], list[str]]:
        return lambda q: runner.search(
            data.query_vectors[q], data.query_texts[q], mode, filters[q] if filters else None, exact
        )

    for key, mode, filters in (
        ("dense", "dense", None),
        ("hybrid", "hybrid", None),
        ("doc", "dense", doc_filters),
        ("shelf", "dense", shelf_filters),
    ):
        out[f"{key}_s"], out[f"{key}_ids"] = timed(search(mode, filters), queries, warmup, budget)
    if engine != "local":  # the exact answers the index's recall is measured against
        out["dense_exact_ids"] = timed(search("dense", None, True), queries, 0)[1]
        out["shelf_exact_ids"] = timed(search("dense", shelf_filters, True), queries, 0)[1]
    runner.close()
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["baseline_rss"] = baseline
    out["folder_bytes"] = folder_bytes(Path(folder))
    return out


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    """Mean share of the exact top-k found, over the queries both answered."""
    return float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(found, exact, strict=False)]))


def rows(
    results: dict[str, dict[str, Any]], n: int, queries: int
) -> Iterator[tuple[str, dict[str, str], str]]:
    """(figure, value per engine, ratio Edge vs local) for the printed table."""
    exact = results["edge"]
    local = results.get("local")

    def ratio(key: str, better_low: bool) -> str:
        if local is None or "edge" not in results:
            return ""
        a, b = results["edge"][key], local[key]
        return f"{(b / a if better_low else a / b):.1f}x"

    def latency(r: dict[str, Any], key: str) -> str:
        count = len(r[f"{key}_s"])
        return f"{r[f'{key}_p50']:.2f} / {r[f'{key}_p95']:.2f}" + (
            "" if count == queries else f" (n={count})"
        )

    per = dict(results)
    for e in per.values():
        for key in ("dense", "hybrid", "doc", "shelf"):
            e[f"{key}_p50"], e[f"{key}_p95"] = percentiles(e[f"{key}_s"])
        e["dense_recall"] = recall(e["dense_ids"], exact["dense_exact_ids"])
        e["shelf_recall"] = recall(e["shelf_ids"], exact["shelf_exact_ids"])
    yield (
        "upsert points/s",
        {
            e: f"{r['upsert_pps']:,.0f}"
            + ("" if r["upsert_timed"] == n else f" (first {r['upsert_timed']:,})")
            for e, r in per.items()
        },
        ratio("upsert_pps", False),
    )
    yield (
        "index build s",
        {e: ("-" if np.isnan(r["build_s"]) else f"{r['build_s']:.1f}") for e, r in per.items()},
        "",
    )
    for key, label in (
        ("dense", "dense"),
        ("hybrid", "hybrid (RRF)"),
        ("doc", "dense, filter doc_id"),
        ("shelf", "dense, filter shelf (10%)"),
    ):
        yield (
            f"{label} p50 / p95 ms",
            {e: latency(r, key) for e, r in per.items()},
            ratio(f"{key}_p50", True),
        )
    yield "recall@10 dense vs exact", {e: f"{r['dense_recall']:.4f}" for e, r in per.items()}, ""
    yield "recall@10 shelf filter vs exact", {e: f"{r['shelf_recall']:.4f}" for e, r in per.items()}, ""
    yield (
        "peak RSS MiB (over baseline)",
        {
            e: f"{r['peak_rss'] / 2**20:,.0f} ({(r['peak_rss'] - r['baseline_rss']) / 2**20:+,.0f})"
            for e, r in per.items()
        },
        ratio("peak_rss", True),
    )
    yield (
        "folder MiB",
        {e: f"{r['folder_bytes'] / 2**20:,.1f}" for e, r in per.items()},
        ratio("folder_bytes", True),
    )


def report(n: int, results: dict[str, dict[str, Any]], queries: int, raw_upsert: float) -> dict[str, float]:
    engines = list(results)
    width = 26
    print(f"\n== {n:,} points, {queries} queries per search (n= where fewer fit the time budget) ==")
    print(f"{'':<40}" + "".join(f"{ENGINES[e]:>{width}}" for e in engines) + f"{'Edge vs local':>15}")
    for label, values, ratio in rows(results, n, queries):
        print(f"{label:<40}" + "".join(f"{values[e]:>{width}}" for e in engines) + f"{ratio:>15}")
    edge = results["edge"]
    local = results.get("local")
    versus = f"{raw_upsert / local['upsert_pps']:.1f}x" if local else ""
    print(
        f"{'upsert points/s, qdrant_edge alone':<40}{raw_upsert:>{width},.0f}{'':>{width * (len(engines) - 1)}}{versus:>15}"
    )
    return {
        "upsert_ratio": edge["upsert_pps"] / local["upsert_pps"] if local else None,
        "raw_upsert_ratio": raw_upsert / local["upsert_pps"] if local else None,
        "dense_p50": edge["dense_p50"],
        "recall": edge["dense_recall"],
        "filtered_p50": max(edge["doc_p50"], edge["shelf_p50"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per search, per engine")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quantize", choices=["int8"], help="also run an Edge collection quantized this way")
    parser.add_argument(
        "--local-upserts",
        type=int,
        default=3_000,
        help="local-mode points whose upsert is timed (it fsyncs every point); the rest go in untimed",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30,
        help="seconds per search kind and engine, after which fewer queries are timed (at least 5)",
    )
    parser.add_argument("--no-local", action="store_true", help="skip local mode (slow past 100,000 points)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    engines = ["edge"] + (["edge-int8"] if args.quantize else []) + ([] if args.no_local else ["local"])
    from ragkit.store import schema
    from ragkit.store.edge import FULL_SCAN_THRESHOLD_KB

    print(
        f"engines: {', '.join(ENGINES[e] for e in engines)}; ragkit HNSW m={schema.HNSW_M} "
        f"ef_construct={schema.HNSW_EF_CONSTRUCT} hnsw_ef={schema.HNSW_EF}, "
        f"full_scan_threshold={FULL_SCAN_THRESHOLD_KB:,} KB; top_k {TOP_K}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("'Edge vs local': how many times Edge is better (more points/s; fewer ms, MiB)")
    checks = []
    context = multiprocessing.get_context("spawn")
    for n in args.sizes:
        started = time.perf_counter()
        data = vectors.synthetic(n, args.queries, seed=args.seed)
        nn1, nn10, pairs = vectors.neighbour_profile(data.vectors)
        print(
            f"\n{data.name}: {n:,} x {vectors.DIM}-d, mean cosine to 1st / 10th neighbour {nn1:.2f} / {nn10:.2f}, "
            f"random pairs {pairs:.2f}; texts ~{np.mean([len(t) for t in data.texts[:1000]]):.0f} chars"
        )
        results: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory() as scratch:
            data_file = Path(scratch) / "data.pickle"
            with data_file.open("wb") as f:
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            del data
            for engine in engines:
                folder = Path(scratch) / engine
                with context.Pool(1) as pool:
                    results[engine] = pool.apply(
                        run_engine,
                        (
                            engine,
                            str(data_file),
                            str(folder),
                            args.queries,
                            args.warmup,
                            args.local_upserts,
                            args.budget,
                        ),
                    )
                print(f"  {ENGINES[engine]}: done in {time.perf_counter() - started:.0f}s", flush=True)
            with context.Pool(1) as pool:
                raw = pool.apply(raw_edge_upsert, (str(data_file), str(Path(scratch) / "raw")))
        checks.append((n, report(n, results, args.queries, raw)))

    print("\ntargets (Edge):")
    for n, c in checks:
        upsert = (
            "not compared (--no-local)"
            if c["upsert_ratio"] is None
            else f"{c['upsert_ratio']:.1f}x local mode (qdrant_edge alone {c['raw_upsert_ratio']:.1f}x)"
        )
        print(
            f"  {n:>9,} points: upsert {upsert} (target >= 20x); dense p50 "
            f"{c['dense_p50']:.2f} ms (<= 3 ms) at recall@10 {c['recall']:.4f} (>= 0.98); filtered p50 "
            f"{c['filtered_p50']:.2f} ms (<= 5 ms)"
        )


if __name__ == "__main__":
    main()
