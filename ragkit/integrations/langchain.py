"""LangChain adapters: a retriever and an embeddings object over a ragkit collection.

Both only translate: `Hit` -> `Document`, and `Encoder` -> `Embeddings`. Search, filters and the model
check stay in ragkit, so a LangChain user gets exactly what `kit.search` returns. An option the retriever
does not know, given when it is made or to `invoke`, is an error: ignoring it would search without it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragkit.encoder import Encoder
from ragkit.errors import InputError
from ragkit.integrations.options import refuse_unknown
from ragkit.kit import Kit
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, Hit

# The retriever's search options, and what each is to `kit.search`.
SEARCH_OPTIONS = {
    "k": "top_k",
    "filters": "filters",
    "score_threshold": "score_threshold",
    "mode": "mode",
    "fusion": "fusion",
}


class LangChainRetriever(BaseRetriever):
    """`invoke`, `ainvoke` and `batch` over `kit.search`; `k` is ragkit's `top_k`, `mode` its search mode,
    `fusion` how hybrid fuses.

    The same options may be given per call, `retriever.invoke(query, k=2, filters={...})`: `k`,
    `score_threshold`, `mode` and `fusion` replace the retriever's for that call, and `filters` are added to
    the retriever's, so a retriever made for one tenant never searches beyond it (a field filtered by both
    is an error, not an override).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    kit: Kit
    k: int = 5
    filters: dict[str, Any] | None = None
    score_threshold: float | None = None
    mode: str = DEFAULT_MODE
    fusion: str = DEFAULT_FUSION

    def __init__(self, **options: Any) -> None:
        # Checked before pydantic, whose extra="forbid" message does not say what is accepted.
        refuse_unknown(
            "as_langchain_retriever", options, {"kit": "kit", **_LANGCHAIN_FIELDS, **SEARCH_OPTIONS}
        )
        super().__init__(**options)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        return [to_document(hit) for hit in self.kit.search(query, **self._options(overrides))]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        return [to_document(hit) for hit in await self.kit.asearch(query, **self._options(overrides))]

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """`kit.search` options: the retriever's, with the per-call `overrides` of one invoke applied."""
        overrides = {name: value for name, value in overrides.items() if name not in _INVOKE_OWN}
        refuse_unknown("the LangChain retriever's invoke", overrides, SEARCH_OPTIONS)
        options = {SEARCH_OPTIONS[name]: getattr(self, name) for name in SEARCH_OPTIONS}
        options |= {SEARCH_OPTIONS[name]: value for name, value in overrides.items() if name != "filters"}
        options["filters"] = _narrowed(self.filters, overrides.get("filters"))
        return options


class LangChainEmbeddings(Embeddings):
    """The collection's encoder for LangChain code (vector stores, semantic chunkers, evaluators).

    Over-long texts are truncated rather than refused, as LangChain callers expect; the encoder logs and
    counts every truncation.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:  # LangChain's contract; the encoder refuses an empty batch as a likely mistake
            return []
        return self.encoder.encode(texts, truncate=True).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text], truncate=True)[0].tolist()


# BaseRetriever's own fields, and the keyword arguments its invoke reads itself before passing them on.
_LANGCHAIN_FIELDS = {name: name for name in BaseRetriever.model_fields}
_INVOKE_OWN = {"verbose"}


def _narrowed(fixed: dict[str, Any] | None, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The retriever's filters and one call's, together; a call may narrow the search, never widen it."""
    if not extra:
        return fixed
    if not isinstance(extra, dict):
        raise InputError(f"filters must be a dict of field -> condition, got {type(extra).__name__}")
    clash = sorted(set(fixed or {}) & set(extra))
    if clash:
        raise InputError(
            f"invoke filters {clash}, which the retriever already filters; make a retriever with the "
            "filters you want instead"
        )
    return {**(fixed or {}), **extra}


def to_document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, "score": hit.score})
