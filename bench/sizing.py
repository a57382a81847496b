"""Bytes per section in ragkit's store on Qdrant's own engine, extrapolated to a million sections (README
"Scale out").

Builds real collections through ragkit's `Store` on Qdrant Edge (the engine ragkit embeds; a Qdrant server
runs the same segment code per shard), so each holds what ragkit writes: a 1024-d dense vector, the BM25
sparse vector of the section's breadcrumb and text (IDF applied by the engine), ragkit section payloads
(`section_payload`, 2-8 KB of prose each) and the keyword indexes on doc_id and source. Two layouts:

- float32: the dense vectors in RAM, HNSW index;
- int8+rescore (`--quantize int8`): an int8 scalar-quantized copy in RAM, the float32 originals on disk
  for rescoring the candidates, HNSW index.

Each layout is built at two sizes and its index built (`every_segment_indexed`, so that both sizes have
their graph); the difference between the two, divided by the difference in points, is the marginal cost
of one point, so fixed costs (write-ahead-log chunks, preallocated pages) drop out. Disk is allocated bytes
(st_blocks), split by component. Memory is measured twice: the resident-set growth of a fresh process that
opens the store and runs dense and hybrid searches, and a computed figure, the bytes of the components the
layout keeps in RAM. Prints tables; asserts nothing.

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

from bench.hnsw import every_segment_indexed
from ingest.sections import embedded_text
from ragkit.store import CollectionOptions, Point, Store, point_id
from ragkit.store.payload import section_payload

ROOT = Path(__file__).resolve().parent.parent
PROSE = [ROOT / "README.md", *sorted((ROOT / "samples").iterdir())]
COLLECTION = "sizing"
BATCH = 256
QUERIES = 200
# Qdrant's rough rule for vectors kept in RAM: vectors x dimension x 4 bytes x 1.5, the 50% for indexes,
# point versions and optimizer segments (https://qdrant.tech/documentation/capacity-planning/).
QDRANT_FACTOR = 1.5
MILLION = 1_000_000
GIB = 2**30
COMPONENTS = (
    "vectors", "quantized", "hnsw", "bm25", "bm25_index", "payload", "payload_index", "id_tracker", "other",
)  # fmt: skip
# What each layout keeps resident; everything else is read from disk through the page cache on demand.
IN_RAM = {
    "float32": {"vectors", "hnsw", "bm25_index", "payload_index", "id_tracker"},
    "int8+rescore": {"quantized", "hnsw", "bm25_index", "payload_index", "id_tracker"},
}
QUANTIZE = {"float32": None, "int8+rescore": "int8"}


@dataclass(frozen=True)
class Build:
    """One optimized shard: its points, allocated bytes by component, build time and resident memory."""

    layout: str
    points: int
    disk: dict[str, int]
    wal: int
    seconds: float
    rss_open: dict[str, int]  # resident growth once the store is open
    rss: dict[str, int]  # resident growth after the searches
    query_ms: dict[str, float]  # median search time per mode


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
    if where.startswith("vector_storage-bm25"):
        return "bm25"
    if where.startswith("vector_index-bm25"):
        return "bm25_index"
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


def build(folder: Path, layout: str, points: int, dim: int, text_bytes: tuple[int, int]) -> float:
    """Seconds to write the points through ragkit's Store and build the index (HNSW, quantization)."""
    start = time.perf_counter()
    with every_segment_indexed(), Store.open(path=folder) as store:
        options = CollectionOptions(quantize=QUANTIZE[layout])
        store.ensure_collection(COLLECTION, dim=dim, model="sizing", options=options)
        store.upsert(COLLECTION, sections(points, dim, text_bytes))
        store.build_index(COLLECTION)
        if (count := store.count(COLLECTION)) != points:
            raise RuntimeError(f"{folder}: {count} points written, not {points}")
    return time.perf_counter() - start


def sections(points: int, dim: int, text_bytes: tuple[int, int]) -> Iterator[Point]:
    """ragkit section points, as ingestion makes them: BM25 of breadcrumb and text, ids from both."""
    rng = np.random.default_rng(7)
    source = payloads(points, text_bytes, seed=11)
    for first in range(0, points, BATCH):  # vectors drawn a batch at a time, not all held at once
        for vector in unit_vectors(rng, min(BATCH, points - first), dim):
            payload = next(source)
            text = embedded_text(payload["breadcrumb"], payload["text"])
            yield Point(point_id(payload["doc_id"], payload["section_index"], text), vector, payload, text)


def shard_of(folder: Path) -> Path:
    return folder / "collections" / COLLECTION / "shard"


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


def measure_memory(folder: str, dim: int, queue: multiprocessing.Queue) -> None:
    """In a fresh process: resident bytes once the store is open, and after searching it, less before."""
    shard = shard_of(Path(folder).resolve())
    rng = np.random.default_rng(99)
    queries = unit_vectors(rng, QUERIES, dim)
    words = prose().split()
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(QUERIES)]
    before = resident(shard)
    timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
    with Store.open(path=folder) as store:
        store.count(COLLECTION)  # loads the shard: collections open on first use
        opened = resident(shard)
        for vector, text in zip(queries, texts, strict=True):
            for mode, seconds in timings.items():
                start = time.perf_counter()
                store.search(COLLECTION, vector, top_k=10, mode=mode, text=text)
                seconds.append(time.perf_counter() - start)
        searched = resident(shard)

    def growth(now: dict[str, int]) -> dict[str, int]:
        return {name: now.get(name, 0) - before.get(name, 0) for name in (*COMPONENTS, "wal", "anonymous")}

    queue.put(
        (growth(opened), growth(searched), {mode: statistics.median(t) * 1000 for mode, t in timings.items()})
    )


def resident_memory(folder: Path, dim: int) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """Resident growth by component, opened and searched, and the median search time per mode, measured
    in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure_memory, args=(str(folder), dim, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join()
    return result


def run(layout: str, points: int, dim: int, text_bytes: tuple[int, int], work: Path) -> Build:
    folder = work / f"{layout}-{points}"
    shutil.rmtree(folder, ignore_errors=True)
    seconds = build(folder, layout, points, dim, text_bytes)
    disk, wal = allocated(shard_of(folder))
    opened, searched, query_ms = resident_memory(folder, dim)
    shutil.rmtree(folder)
    return Build(layout, points, disk, wal, seconds, opened, searched, query_ms)


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

    print(
        f"\nragkit collections on Qdrant Edge, {dim}-d cosine + BM25, {sizes[0]:,} and {sizes[1]:,} points per layout"
    )
    print(f"section text {text:,.0f} B and payload JSON {payload_json:,.0f} B per point (mean)")
    resident_parts = ("anonymous", *COMPONENTS)
    for title, parts, field in (
        ("allocated disk", COMPONENTS, "disk"),
        ("resident memory once opened (fresh process)", resident_parts, "rss_open"),
        (f"resident memory after {QUERIES} dense and {QUERIES} hybrid searches", resident_parts, "rss"),
    ):
        print(f"\n{title}, bytes per point, by component:")
        print(f"{'layout':<14}" + "".join(f"{name:>14}" for name in parts) + f"{'total':>10}")
        for layout, (a, b) in builds.items():
            row = per_point(getattr(a, field), getattr(b, field), parts)
            cells = "".join(f"{row[name]:>14,.0f}" for name in parts)
            print(f"{layout:<14}{cells}{sum(row.values()):>10,.0f}")
    print(
        f"(not per point: the write-ahead log, {large.wal / 2**20:,.0f} MiB on disk at {large.points:,} "
        f"points, {large.rss['wal'] / 2**20:,.0f} MiB of it resident)"
    )

    print("\nper point (bytes) and per million sections (GiB), one replica:")
    columns = ("disk", "RAM computed", "RAM opened", "RAM searched")
    print(
        f"{'layout':<14}" + "".join(f"{c:>14}" for c in columns) + "".join(f"{c + '/1M':>17}" for c in columns)
        + f"{'build s':>9}{'dense ms':>10}{'hybrid ms':>10}"
    )  # fmt: skip
    for layout, (a, b) in builds.items():
        figures = (
            sum(per_point(a.disk, b.disk, COMPONENTS).values()),
            sum(per_point(a.disk, b.disk, IN_RAM[layout]).values()),
            sum(per_point(a.rss_open, b.rss_open, resident_parts).values()),
            sum(per_point(a.rss, b.rss, resident_parts).values()),
        )
        print(
            f"{layout:<14}" + "".join(f"{f:>14,.0f}" for f in figures) + "".join(f"{gib(f):>17}" for f in figures)
            + f"{b.seconds:>9.1f}{b.query_ms['dense']:>10.2f}{b.query_ms['hybrid']:>10.2f}"
        )  # fmt: skip
    formula = dim * 4 * QDRANT_FACTOR
    print(
        f"{'Qdrant rule':<14}{'':>14}{formula:>14,.0f}{'':>28}{'':>17}{gib(formula):>17}"
        f"   = {dim} x 4 B x {QDRANT_FACTOR} (qdrant.tech/documentation/capacity-planning)"
    )
    print(
        "\nRAM computed: the disk bytes of what the layout keeps in RAM "
        + "; ".join(f"{layout}: {', '.join(sorted(parts))}" for layout, parts in IN_RAM.items())
        + ".\nRAM opened / searched: resident growth of a fresh process once the store is open, and after "
        + f"{QUERIES} dense and {QUERIES} hybrid searches (top 10 with payloads; HNSW and quantization as"
        + " ragkit sets them). Pages the kernel maps around each payload read count as resident."
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
