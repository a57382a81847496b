"""HNSW parameters by measurement: recall@10 of Edge's index against exact search, per setting.

ragkit's HNSW constants (`ragkit/store/schema.py`: HNSW_M, HNSW_EF_CONSTRUCT, HNSW_EF) are chosen with
this sweep: for each (m, ef_construct) both vector sets are written into an Edge collection through
ragkit's `Store` and indexed; for each hnsw_ef every query is searched through the index, and recall@10
is the share of the exact top 10 (computed in float64 with NumPy) that the index found. With
`--quantize int8` the collections keep an int8 copy of the vectors and search it with rescoring, as
`ragkit ingest --quantize int8` builds them; recall is still counted against the float64 top 10.
The vector sets are real embeddings (paragraphs of the PostgreSQL manual, packaged MiniLM; embedded once,
then cached) and the clustered synthetic set of bench/store.py. Each collection is one segment, indexed
and searched through its graph whatever its size (`every_segment_indexed`); at these sizes Edge would
otherwise scan exactly and every setting would score 1.0.

The pick is the cheapest setting that reaches the target recall on every set: the least build time
(summed over the sets), then the least hnsw_ef. Build time comes first because it is what differs: every
setting searches these sets in well under a millisecond, while a build takes minutes on a small CPU. The target is 0.995, not ragkit's 0.98, because a graph loses recall as
it grows and ragkit's collections are larger than the sweep's; bench/store.py re-measures the pick at
100,000 points.

    python -m bench.hnsw                     # 13,000 real paragraphs + 15,000 synthetic points
    python -m bench.hnsw --real 5000 --synthetic 5000 --grid 16:100
    python -m bench.hnsw --grid 16:64 --quantize int8   # recall of ragkit's setting, quantized
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import vectors

DEFAULT_GRID = ["8:128", "16:64", "16:128", "16:200"]
DEFAULT_EF = [16, 32, 64, 128]
TARGET = 0.995  # at the sweep's sizes; ragkit's requirement is 0.98 at 100,000 points and more
TOP_K = 10


@contextmanager
def hnsw(m: int, ef_construct: int, ef: int) -> Iterator[None]:
    """ragkit's HNSW constants set to one setting of the sweep, and put back afterwards."""
    from ragkit.store import schema

    saved = (schema.HNSW_M, schema.HNSW_EF_CONSTRUCT, schema.HNSW_EF)
    schema.HNSW_M, schema.HNSW_EF_CONSTRUCT, schema.HNSW_EF = m, ef_construct, ef
    try:
        yield
    finally:
        schema.HNSW_M, schema.HNSW_EF_CONSTRUCT, schema.HNSW_EF = saved


@contextmanager
def every_segment_indexed() -> Iterator[None]:
    """Collections created meanwhile are built as one segment, always indexed and searched through it.

    Edge leaves segments under its indexing threshold without a graph, and ragkit's full-scan threshold
    searches small ones exactly: at the sweep's sizes either would make every setting score 1.0. One
    segment makes the graph as big as the set, the harder case. Neither knob is a ragkit constant, so
    this wraps the engine's config for the sweep only.
    """
    import qdrant_edge

    from ragkit.store import edge

    config, threshold = qdrant_edge.EdgeConfig, edge.FULL_SCAN_THRESHOLD_KB
    optimizers = qdrant_edge.EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1)
    qdrant_edge.EdgeConfig = lambda **options: config(**options, optimizers=optimizers)
    edge.FULL_SCAN_THRESHOLD_KB = 1
    try:
        yield
    finally:
        qdrant_edge.EdgeConfig, edge.FULL_SCAN_THRESHOLD_KB = config, threshold


def exact_top(data: vectors.VectorSet, ids: list[str]) -> list[set[str]]:
    """Each query's true top 10 by cosine, computed in float64 outside the engine, so that neither the
    graph nor a quantized copy of the vectors can shape the answer it is checked against."""
    scores = data.query_vectors.astype(np.float64) @ data.vectors.astype(np.float64).T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return [{ids[i] for i in row} for row in top]


def measure(
    data: vectors.VectorSet, folder: Path, m: int, ef_construct: int, efs: list[int], quantize: str | None
) -> tuple[float, dict[int, tuple[float, float]]]:
    """Build seconds, and (recall@10, p50 ms) per hnsw_ef, of one (m, ef_construct) on one vector set."""
    from ragkit.store import CollectionOptions, Point, Store, point_id

    ids = [point_id("sweep", i, text) for i, text in enumerate(data.texts)]
    exact = exact_top(data, ids)
    with every_segment_indexed(), hnsw(m, ef_construct, efs[0]), Store.open(path=folder) as store:
        store.ensure_collection(
            "sweep", dim=data.vectors.shape[1], model="sweep", options=CollectionOptions(quantize=quantize)
        )
        store.upsert(
            "sweep",
            (Point(ids[i], data.vectors[i], {"text": text}) for i, text in enumerate(data.texts)),
        )
        built = store.build_index("sweep")
        out = {}
        for ef in efs:
            with hnsw(m, ef_construct, ef):
                found, seconds = [], []
                for q in data.query_vectors:
                    start = time.perf_counter()
                    found.append({h.id for h in store.search("sweep", q, top_k=TOP_K)})
                    seconds.append(time.perf_counter() - start)
            hit = np.mean([len(a & b) / TOP_K for a, b in zip(found, exact, strict=True)])
            out[ef] = (float(hit), 1000 * float(np.median(seconds)))
    return built, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real", type=int, default=13_000, help="PostgreSQL paragraphs (0: none)")
    parser.add_argument("--synthetic", type=int, default=15_000, help="synthetic points (0: none)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--grid", nargs="+", default=DEFAULT_GRID, help="m:ef_construct settings")
    parser.add_argument("--ef", type=int, nargs="+", default=DEFAULT_EF, help="hnsw_ef values")
    parser.add_argument("--target", type=float, default=TARGET, help="recall@10 every set must reach")
    parser.add_argument("--corpus", type=Path, default=vectors.POSTGRES_DOCS)
    parser.add_argument(
        "--quantize", choices=["int8"], help="sweep quantized collections (searched with rescoring)"
    )
    args = parser.parse_args()

    sets = []
    if args.real:
        sets.append(vectors.real(args.real, args.queries, corpus=args.corpus))
    if args.synthetic:
        sets.append(vectors.synthetic(args.synthetic, args.queries))
    for data in sets:
        nn1, nn10, pairs = vectors.neighbour_profile(data.vectors)
        print(
            f"{data.name}: {len(data.vectors):,} x {data.vectors.shape[1]}-d, {len(data.query_vectors)} queries; "
            f"mean cosine to 1st / 10th neighbour {nn1:.2f} / {nn10:.2f}, random pairs {pairs:.2f}"
        )
    grid = [tuple(int(x) for x in g.split(":")) for g in args.grid]
    results: dict[tuple[int, int], list[tuple[float, dict[int, tuple[float, float]]]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for m, ef_construct in grid:
            results[(m, ef_construct)] = [
                measure(
                    data, Path(scratch) / f"{m}-{ef_construct}-{i}", m, ef_construct, args.ef, args.quantize
                )
                for i, data in enumerate(sets)
            ]
            print(f"  m={m} ef_construct={ef_construct}: measured", flush=True)

    names = [("real" if "PostgreSQL" in d.name else "synthetic") for d in sets]
    header = "".join(f"{n + ' recall':>18}{n + ' p50 ms':>18}{n + ' build s':>18}" for n in names)
    print(f"\n{'m':>4}{'ef_constr':>10}{'hnsw_ef':>9}{header}")
    passing = []
    for (m, ef_construct), per_set in results.items():
        for ef in args.ef:
            cells = "".join(
                f"{measured[ef][0]:>16.4f}{measured[ef][1]:>16.2f}{built:>16.1f}"
                for built, measured in per_set
            )
            print(f"{m:>4}{ef_construct:>10}{ef:>9}{cells}")
            if all(measured[ef][0] >= args.target for _, measured in per_set):
                passing.append((sum(built for built, _ in per_set), ef, m, ef_construct))
    if not passing:
        print(f"\nno setting reaches recall@10 >= {args.target} on every set")
        return
    _, ef, m, ef_construct = min(passing)
    print(
        f"\ncheapest setting with recall@10 >= {args.target} on every set (least build time, then least "
        f"hnsw_ef): m={m} ef_construct={ef_construct} hnsw_ef={ef}"
    )


if __name__ == "__main__":
    main()
