"""Query -> hits: embed the query with the collection's encoder, search the store, shape the results.

`Hit` is the one result type every adapter (LangChain, LlamaIndex, HTTP, query engine) translates from.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragkit.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from ragkit.kit import Kit

MAX_TOP_K = 1000


@dataclass(frozen=True)
class Hit:
    """One retrieved section: point id, cosine score, section text, and everything else in `metadata`.

    `metadata` holds at least source, doc_id, title, breadcrumb, page_start/page_end, section_index.
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def search(
    kit: Kit,
    query: str,
    *,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    score_threshold: float | None = None,
) -> list[Hit]:
    """The best `top_k` sections for `query`, best first."""
    _check_query(query, top_k)
    vector = kit.encoder.encode([query], truncate=True)[0]
    return search_vector(kit, vector, top_k=top_k, filters=filters, score_threshold=score_threshold)


def search_vector(
    kit: Kit,
    vector: np.ndarray,
    *,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    score_threshold: float | None = None,
) -> list[Hit]:
    """`search` for a query embedded already: the HTTP service embeds concurrent queries in one batch."""
    stored = kit.store.search(
        kit.collection, vector, top_k=top_k, filters=filters, score_threshold=score_threshold
    )
    return [_hit(point.id, point.score, point.payload) for point in stored]


async def asearch(kit: Kit, query: str, **options: Any) -> list[Hit]:
    """`search` in a worker thread: the encoder and the embedded store are blocking and CPU-bound."""
    return await asyncio.to_thread(search, kit, query, **options)


def _check_query(query: str, top_k: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InputError("the query is empty: pass some text to search for")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")


def _hit(point_id: str, score: float, payload: dict[str, Any]) -> Hit:
    metadata = {key: value for key, value in payload.items() if key != "text"}
    return Hit(id=point_id, score=float(score), text=payload.get("text", ""), metadata=metadata)
