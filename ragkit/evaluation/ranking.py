"""Section hits -> document rankings: a document scores as its best section (max-pooling).

Relevance is judged per document, but the collection holds several sections (or chunks) per document,
so the top `k` sections may name far fewer than `k` documents. Each query therefore asks for sections
in proportion to the collection's sections per document, and widens the search until it has `k`
documents, the collection is exhausted, or the search limit is reached (counted as a short ranking).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragkit.retrieval import DEFAULT_FUSION, MAX_TOP_K, Hit
from ragkit.store.schema import needs_vector

if TYPE_CHECKING:
    import numpy as np

    from ragkit.retrieval import Retriever

Run = dict[str, dict[str, float]]
"""run[query_id][doc_id] = score, the shape IR-metric libraries take."""


@dataclass(frozen=True)
class SearchStats:
    queries: int
    short: int  # queries whose ranking the search limit cut short of top-k documents
    seconds: float


def best_per_document(hits: Iterable[Hit], top_k: int) -> dict[str, float]:
    """The `top_k` best documents among `hits`, each scored by its best section, best first."""
    best: dict[str, float] = {}
    for hit in hits:
        doc_id = hit.metadata["doc_id"]
        if hit.score > best.get(doc_id, -math.inf):
            best[doc_id] = hit.score
    return dict(sorted(best.items(), key=lambda item: -item[1])[:top_k])


def rank_documents(
    retriever: Retriever,
    vector: np.ndarray | None,
    query: str,
    *,
    top_k: int,
    points: int,
    documents: int,
    mode: str,
    fusion: str = DEFAULT_FUSION,
) -> tuple[dict[str, float], bool]:
    """The `top_k` documents for an embedded query, and whether the search limit cut them short.

    Fewer than `top_k` come back when the limit was reached, or when the mode has no more sections to
    rank: BM25 ranks only sections that share a word with the query, which is an answer, not a shortfall.
    """
    wanted = min(top_k, documents)
    cap = min(MAX_TOP_K, points)
    limit = min(cap, max(wanted, math.ceil(wanted * points / documents)))
    while True:
        hits = retriever.search_vector(vector, query, top_k=limit, mode=mode, fusion=fusion)
        ranking = best_per_document(hits, top_k)
        if len(ranking) >= wanted or len(hits) < limit:
            return ranking, False
        if limit >= cap:
            return ranking, cap < points
        limit = min(cap, 2 * limit)


def rank_queries(
    retriever: Retriever,
    queries: Mapping[str, str],
    *,
    top_k: int,
    points: int,
    documents: int,
    mode: str,
    fusion: str,
    progress: bool,
) -> tuple[Run, SearchStats]:
    """Rank documents for every query, timing the whole (query encoding included)."""
    from tqdm.auto import tqdm

    run: Run = {}
    short = 0
    started = time.perf_counter()
    # All queries in one encode call: token-budget batches instead of one forward pass per query. BM25
    # alone needs no vectors, and its timing should not include them.
    vectors: Sequence[np.ndarray | None] = (
        retriever.encoder.encode(list(queries.values()), truncate=True)
        if needs_vector(mode)
        else [None] * len(queries)
    )
    for (query_id, query), vector in tqdm(
        zip(queries.items(), vectors, strict=True),
        desc="searching",
        unit="query",
        total=len(queries),
        disable=not progress,
    ):
        run[query_id], cut_short = rank_documents(
            retriever,
            vector,
            query,
            top_k=top_k,
            points=points,
            documents=documents,
            mode=mode,
            fusion=fusion,
        )
        short += cut_short
    return run, SearchStats(len(queries), short, time.perf_counter() - started)
