"""Query -> hits: embed the query, search the store in the chosen mode, shape the results.

The read path takes what it uses, an encoder and a store (a `Retriever`), or anything that searches (a
`Searcher`), never the user-facing `Kit`: `Kit` composes these for users, the HTTP service composes its
own. `Hit` is the one result type every adapter (LangChain, LlamaIndex, HTTP, query engine) translates.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any, Protocol

from ragkit.errors import InputError
from ragkit.store.schema import Fusion, SearchMode, check_fusion, check_mode, needs_vector

if TYPE_CHECKING:
    import numpy as np

    from ragkit.store import Store

MAX_TOP_K = 1000
# Measured (README, "Evaluate"): hybrid beat dense and sparse in nDCG@10 on all four long-document sets.
DEFAULT_MODE: SearchMode = "hybrid"
# RRF by default: it beat DBSF on the first two sets (README, "Evaluate").
DEFAULT_FUSION: Fusion = "rrf"


@dataclass(frozen=True)
class Hit:
    """One retrieved section: point id, score, section text, and everything else in `metadata`.

    The score is the search mode's: a cosine similarity (dense), a BM25 score (sparse), or a fused rank
    score (hybrid; RRF gives at most 2/10 = 0.2), so compare scores within one mode only.
    `metadata` holds at least source, doc_id, title, breadcrumb, page_start/page_end, section_index.
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class QueryEncoder(Protocol):
    """What the read path needs of an encoder: `ragkit.Encoder` and the service's routed one both fit."""

    def encode(self, texts: Sequence[str], **options: Any) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


class Searcher(Protocol):
    """A collection that answers queries: a `Kit`, a `Retriever`, or the service's collection view."""

    @property
    def collection(self) -> str: ...

    @property
    def encoder(self) -> QueryEncoder: ...

    def search(self, query: str, **options: Any) -> list[Hit]: ...

    async def asearch(self, query: str, **options: Any) -> list[Hit]: ...


@dataclass(frozen=True)
class Retriever:
    """Searches one collection of a store, embedding queries with the collection's encoder."""

    encoder: QueryEncoder
    store: Store
    collection: str

    def search(
        self,
        query: str,
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: SearchMode = DEFAULT_MODE,
        fusion: Fusion = DEFAULT_FUSION,
    ) -> list[Hit]:
        """The best `top_k` sections for `query`, best first; `mode` is dense, sparse or hybrid, and `fusion`
        (rrf or dbsf) how hybrid fuses its two lists."""
        check_query(query, top_k, score_threshold)
        check_mode(mode)  # before a model is loaded for a search that cannot run
        check_fusion(fusion)
        vector = self.encoder.encode([query], truncate=True)[0] if needs_vector(mode) else None
        return self.search_vector(
            vector,
            query,
            top_k=top_k,
            filters=filters,
            score_threshold=score_threshold,
            mode=mode,
            fusion=fusion,
        )

    def search_vector(
        self,
        vector: np.ndarray | None,
        query: str,
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: SearchMode = DEFAULT_MODE,
        fusion: Fusion = DEFAULT_FUSION,
    ) -> list[Hit]:
        """`search` for a query embedded already: the HTTP service embeds concurrent queries in one batch."""
        check_query(query, top_k, score_threshold)
        stored = self.store.search(
            self.collection,
            vector,
            top_k=top_k,
            filters=filters,
            score_threshold=score_threshold,
            mode=mode,
            text=query,
            fusion=fusion,
        )
        return [_hit(point.id, point.score, point.payload) for point in stored]

    async def asearch(self, query: str, **options: Any) -> list[Hit]:
        """`search` in a worker thread: the encoder and the embedded store are blocking and CPU-bound."""
        return await asyncio.to_thread(self.search, query, **options)


def check_query(query: str, top_k: int, score_threshold: float | None) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InputError("the query is empty: pass some text to search for")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
    # The store would fail on a string, and a NaN threshold keeps no hit without saying why.
    if score_threshold is not None and (
        isinstance(score_threshold, bool)
        or not isinstance(score_threshold, Real)
        or not math.isfinite(score_threshold)
    ):
        raise InputError(f"score_threshold must be a finite number or None, got {score_threshold!r}")


def _hit(point_id: str, score: float, payload: dict[str, Any]) -> Hit:
    metadata = {key: value for key, value in payload.items() if key != "text"}
    return Hit(id=point_id, score=float(score), text=payload.get("text", ""), metadata=metadata)
