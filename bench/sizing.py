"""Bytes per section on Qdrant's own engine, extrapolated to a million sections (README "Scale out").

Builds real Qdrant Edge shards (the engine ragkit embeds; a Qdrant server runs the same segment code per
shard) holding 1024-d vectors and ragkit section payloads (`section_payload`, 2-8 KB of prose each,
keyword indexes on doc_id and source as on a server), in two layouts:

- float32: the original vectors in RAM (page-cached), HNSW index;
- int8+rescore: an int8 scalar-quantized copy pinned in RAM, the float32 originals on disk for
  rescoring the candidates, HNSW index.

Each layout is built at two sizes and optimized (HNSW built); the difference between the two, divided by
the difference in points, is the marginal cost of one point, so fixed costs (write-ahead-log chunks,
preallocated pages) drop out. Disk is allocated bytes (st_blocks), split by component. Memory is measured
twice: the resident-set growth of a fresh process that opens the shard and runs HNSW queries, and a
computed figure, the bytes of the components the layout keeps in RAM. Prints tables; asserts nothing.

    python -m bench.sizing                  # 5k and 20k points per layout, a few minutes on 2 cores
    python -m bench.sizing --points 80000   # steadier slopes, longer
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragkit.store.payload import section_payload

ROOT = Path(__file__).resolve().parent.parent
PROSE = [ROOT / "README.md", *sorted((ROOT / "samples").iterdir())]
VECTOR = "dense"
INDEXED_FIELDS = ("doc_id", "source")
BATCH = 256
QUERIES = 200
# Qdrant's rough rule for vectors kept in RAM: vectors x dimension x 4 bytes x 1.5, the 50% for indexes,
# point versions and optimizer segments (https://qdrant.tech/documentation/capacity-planning/).
QDRANT_FACTOR = 1.5
MILLION = 1_000_000
GIB = 2**30
COMPONENTS = ("vectors", "quantized", "hnsw", "payload", "payload_index", "id_tracker", "other")
# What each layout keeps resident; everything else is read from disk through the page cache on demand.
IN_RAM = {
    "float32": {"vectors", "hnsw", "payload_index", "id_tracker"},
    "int8+rescore": {"quantized", "hnsw", "payload_index", "id_tracker"},
}


@dataclass(frozen=True)
class Build:
    """One optimized shard: its points, allocated bytes by component, build time and resident memory."""

    layout: str
    points: int
    disk: dict[str, int]
    wal: int
    seconds: float
    rss: dict[str, int]
    query_ms: float


def edge_config(layout: str, dim: int):
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeVectorParams,
        Memory,
        ScalarQuantizationConfig,
        ScalarType,
    )

    if layout == "float32":
        params = EdgeVectorParams(size=dim, distance=Distance.Cosine, memory=Memory.Cached)
    else:
        params = EdgeVectorParams(
            size=dim,
            distance=Distance.Cosine,
            memory=Memory.Cold,
            quantization_config=ScalarQuantizationConfig(
                type=ScalarType.Int8, quantile=0.99, memory=Memory.Pinned
            ),
        )
    # Index from the first kilobyte, so that both sizes of a layout are measured with their HNSW graph.
    optimizers = EdgeOptimizersConfig(indexing_threshold=1)
    return EdgeConfig(vectors={VECTOR: params}, payload_memory=Memory.Cold, optimizers=optimizers)


def prose() -> str:
    """Real prose to cut section texts from, so payload compression behaves as on real documents."""
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in PROSE if path.is_file())
    return re.sub(r"<[^>]+>", " ", text)


def payloads(count: int, text_bytes: tuple[int, int], seed: int) -> Iterator[dict]:
    """ragkit section payloads: documents of 5-40 sections, texts of uniformly 2-8 KB cut from prose."""
    source_text = prose()
    rng = np.random.default_rng(seed)
    made = 0
    while made < count:
        sections = int(rng.integers(5, 41))
        doc = f"/srv/documents/team-{made % 7}/report-{made:08d}.pdf"
        doc_id = str(uuid.uuid5(uuid.NAMESPACE_URL, doc))
        title = f"Annual operations report {made}"
        for index in range(min(sections, count - made)):
            size = int(rng.integers(text_bytes[0], text_bytes[1] + 1))
            start = int(rng.integers(0, len(source_text) - size))
            text = source_text[start : start + size]
            page = 1 + index * 2
            yield section_payload(
                text=text,
                doc_id=doc_id,
                source=doc,
                title=title,
                breadcrumb=[title, f"Chapter {index // 5 + 1}", f"Section {index + 1}"],
                section_index=index,
                section_count=sections,
                tokens=len(text) // 4,
                page_start=page,
                page_end=page + 1,
                doc_hash=uuid.uuid5(uuid.NAMESPACE_OID, doc).hex * 2,
            )
            made += 1


def unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def component(relative: Path) -> str:
    parts = relative.parts
    if parts[0] != "segments":
        return "other"
    where, name = "/".join(parts[2:-1]), parts[-1]
    if where.startswith("vector_storage"):
        return "quantized" if name.startswith("quantized") else "vectors"
    if where.startswith("vector_index"):
        return "hnsw"
    if where.startswith("payload_storage"):
        return "payload"
    if where.startswith("payload_index"):
        return "payload_index"
    if name.startswith("id_tracker"):
        return "id_tracker"
    return "other"


def allocated(shard: Path) -> tuple[dict[str, int], int]:
    """Allocated bytes by component (sparse preallocated files count what is written), and the WAL's."""
    sizes: dict[str, int] = defaultdict(int)
    wal = 0
    for path in shard.rglob("*"):
        if path.is_file():
            relative = path.relative_to(shard)
            used = path.stat().st_blocks * 512
            if relative.parts[0] == "wal":
                wal += used
            else:
                sizes[component(relative)] += used
    return {name: sizes[name] for name in COMPONENTS}, wal


def build(shard: Path, layout: str, points: int, dim: int, text_bytes: tuple[int, int]) -> float:
    """Seconds to upsert the points and optimize the shard (HNSW and quantization built)."""
    from qdrant_edge import EdgeShard, PayloadSchemaType, Point, UpdateOperation

    rng = np.random.default_rng(7)
    start = time.perf_counter()
    edge = EdgeShard.create(str(shard), edge_config(layout, dim))
    for name in INDEXED_FIELDS:
        edge.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword))
    source = payloads(points, text_bytes, seed=11)
    for first in range(0, points, BATCH):
        count = min(BATCH, points - first)
        vectors = unit_vectors(rng, count, dim)
        batch = [
            Point(str(uuid.UUID(int=first + i)), {VECTOR: vectors[i].tolist()}, next(source))
            for i in range(count)
        ]
        edge.update(UpdateOperation.upsert_points(batch))
    edge.flush()
    edge.optimize()
    info = edge.info()
    edge.close()
    if info.points_count != points or info.indexed_vectors_count < points:
        raise RuntimeError(f"{shard}: {info.points_count} points, {info.indexed_vectors_count} indexed")
    return time.perf_counter() - start


def resident(shard: Path) -> dict[str, int]:
    """This process's resident bytes: anonymous, and file-backed per shard component (from smaps)."""
    sizes: dict[str, int] = defaultdict(int)
    mapped = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if not fields[0].endswith(":"):  # a mapping's header: address perms offset dev inode [path]
            path = Path(fields[5]) if len(fields) > 5 else None
            mapped = path.relative_to(shard) if path and path.is_relative_to(shard) else None
        elif fields[0] == "Rss:" and mapped is not None:
            sizes["wal" if mapped.parts[0] == "wal" else component(mapped)] += int(fields[1]) * 1024
        elif fields[0] == "Anonymous:":
            sizes["anonymous"] += int(fields[1]) * 1024
    return dict(sizes)


def measure_memory(shard: str, dim: int, queue: multiprocessing.Queue) -> None:
    """In a fresh process: resident bytes after opening the shard and running HNSW queries, less before."""
    from qdrant_edge import EdgeShard, QuantizationSearchParams, Query, QueryRequest, SearchParams

    folder = Path(shard).resolve()
    queries = unit_vectors(np.random.default_rng(99), QUERIES, dim)
    params = SearchParams(hnsw_ef=128, quantization=QuantizationSearchParams(rescore=True, oversampling=2.0))
    before = resident(folder)
    edge = EdgeShard.load(shard)
    opened = resident(folder)
    timings = []
    for query in queries:
        start = time.perf_counter()
        edge.query(QueryRequest(limit=10, query=Query.Nearest(query.tolist(), using=VECTOR), params=params))
        timings.append(time.perf_counter() - start)
    after = resident(folder)
    edge.close()
    grown = {name: after.get(name, 0) - before.get(name, 0) for name in (*COMPONENTS, "wal", "anonymous")}
    grown["anonymous at open"] = opened.get("anonymous", 0) - before.get("anonymous", 0)
    queue.put((grown, statistics.median(timings) * 1000))


def resident_memory(shard: Path, dim: int) -> tuple[dict[str, int], float]:
    """Resident growth by component and the median query time, measured in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure_memory, args=(str(shard), dim, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join()
    return result


def run(layout: str, points: int, dim: int, text_bytes: tuple[int, int], work: Path) -> Build:
    shard = work / f"{layout}-{points}"
    shutil.rmtree(shard, ignore_errors=True)
    seconds = build(shard, layout, points, dim, text_bytes)
    disk, wal = allocated(shard)
    memory, query_ms = resident_memory(shard, dim)
    shutil.rmtree(shard)
    return Build(layout, points, disk, wal, seconds, memory, query_ms)


def slope(small: float, large: float, points: tuple[int, int]) -> float:
    return (large - small) / (points[1] - points[0])


def gib(bytes_per_point: float) -> str:
    """GiB for a million points."""
    return f"{bytes_per_point * MILLION / GIB:.2f}"


def report(builds: dict[str, tuple[Build, Build]], dim: int, payload_json: float, text: float) -> None:
    small, large = next(iter(builds.values()))
    sizes = (small.points, large.points)

    def per_point(a: dict[str, int], b: dict[str, int], names: Iterable[str]) -> dict[str, float]:
        return {name: slope(a.get(name, 0), b.get(name, 0), sizes) for name in names}

    print(f"\nQdrant Edge shards, {dim}-d cosine, {sizes[0]:,} and {sizes[1]:,} points per layout")
    print(f"section text {text:,.0f} B and payload JSON {payload_json:,.0f} B per point (mean)")
    resident_parts = ("anonymous", *COMPONENTS)
    for title, parts, field in (
        ("allocated disk", COMPONENTS, "disk"),
        ("resident memory after opening and querying (fresh process)", resident_parts, "rss"),
    ):
        print(f"\n{title}, bytes per point, by component:")
        print(f"{'layout':<14}" + "".join(f"{name:>14}" for name in parts) + f"{'total':>10}")
        for layout, (a, b) in builds.items():
            row = per_point(getattr(a, field), getattr(b, field), parts)
            cells = "".join(f"{row[name]:>14,.0f}" for name in parts)
            print(f"{layout:<14}{cells}{sum(row.values()):>10,.0f}")
    for layout, (a, b) in builds.items():
        print(
            f"{layout}: anonymous growth per point {per_point(a.rss, b.rss, ['anonymous at open'])['anonymous at open']:,.0f} B once opened, before any query"
        )
    print(
        f"(not per point: the write-ahead log, {large.wal / 2**20:,.0f} MiB on disk at {large.points:,} "
        f"points, {large.rss['wal'] / 2**20:,.0f} MiB of it resident)"
    )

    print("\nper point (bytes) and per million sections (GiB), one replica:")
    print(
        f"{'layout':<14}{'disk':>9}{'RAM computed':>14}{'RAM measured':>14}"
        f"{'disk/1M':>10}{'RAM computed/1M':>17}{'RAM measured/1M':>17}{'build s':>9}{'query ms':>10}"
    )
    for layout, (a, b) in builds.items():
        disk = sum(per_point(a.disk, b.disk, COMPONENTS).values())
        ram = sum(per_point(a.disk, b.disk, IN_RAM[layout]).values())
        rss = sum(per_point(a.rss, b.rss, resident_parts).values())
        print(
            f"{layout:<14}{disk:>9,.0f}{ram:>14,.0f}{rss:>14,.0f}{gib(disk):>10}{gib(ram):>17}{gib(rss):>17}"
            f"{b.seconds:>9.1f}{b.query_ms:>10.2f}"
        )
    formula = dim * 4 * QDRANT_FACTOR
    print(
        f"{'Qdrant rule':<14}{'':>9}{formula:>14,.0f}{'':>14}{'':>10}{gib(formula):>17}"
        f"   = {dim} x 4 B x {QDRANT_FACTOR} (qdrant.tech/documentation/capacity-planning)"
    )
    print(
        "\nRAM computed: the disk bytes of what the layout keeps in RAM "
        + "; ".join(f"{layout}: {', '.join(sorted(parts))}" for layout, parts in IN_RAM.items())
        + ".\nRAM measured: resident growth over 200 HNSW queries (hnsw_ef 128, rescoring, oversampling 2)."
        + "\nA cluster holds replication_factor copies of every shard: multiply by 2 for --replicas 2."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=20000, help="larger build; the smaller is a quarter")
    parser.add_argument("--dim", type=int, default=1024, help="vector size (gte-large: 1024)")
    parser.add_argument("--text-kb", type=float, nargs=2, default=(2, 8), metavar=("MIN", "MAX"))
    parser.add_argument("--work-dir", type=Path, help="where shards are built (default: a temporary folder)")
    args = parser.parse_args()
    text_bytes = (int(args.text_kb[0] * 1024), int(args.text_kb[1] * 1024))
    sample = list(payloads(2000, text_bytes, seed=11))
    payload_json = statistics.mean(len(json.dumps(p).encode()) for p in sample)
    text = statistics.mean(len(p["text"].encode()) for p in sample)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        builds = {}
        for layout in IN_RAM:
            builds[layout] = tuple(
                run(layout, points, args.dim, text_bytes, Path(work))
                for points in (args.points // 4, args.points)
            )
            print(f"{layout}: built {args.points // 4:,} and {args.points:,} points", flush=True)
    report(builds, args.dim, payload_json, text)


if __name__ == "__main__":
    main()
