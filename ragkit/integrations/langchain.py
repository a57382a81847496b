"""LangChain adapters: a retriever and an embeddings object over a ragkit collection.

Both only translate: `Hit` -> `Document`, and `Encoder` -> `Embeddings`. Search, filters and the model
check stay in ragkit, so a LangChain user gets exactly what `kit.search` returns.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragkit.encoder import Encoder
from ragkit.kit import Kit
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, Hit


class LangChainRetriever(BaseRetriever):
    """`invoke`, `ainvoke` and `batch` over `kit.search`; `k` is ragkit's `top_k`, `mode` its search mode,
    `fusion` how hybrid fuses."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kit: Kit
    k: int = 5
    filters: dict[str, Any] | None = None
    score_threshold: float | None = None
    mode: str = DEFAULT_MODE
    fusion: str = DEFAULT_FUSION

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(hit) for hit in self.kit.search(query, **self._options())]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(hit) for hit in await self.kit.asearch(query, **self._options())]

    def _options(self) -> dict[str, Any]:
        return {
            "top_k": self.k,
            "filters": self.filters,
            "score_threshold": self.score_threshold,
            "mode": self.mode,
            "fusion": self.fusion,
        }


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


def to_document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, "score": hit.score})
