"""LlamaIndex adapters: a retriever, an embedding model and a query engine over a ragkit collection.

Only translations: `Hit` -> `NodeWithScore(TextNode)` with the point id as node id, and `Encoder` ->
`BaseEmbedding`. Search, filters and the model check stay in ragkit. An option neither ragkit nor
LlamaIndex knows is an error: `RetrieverQueryEngine.from_args` would silently drop it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from ragkit.encoder import Encoder
from ragkit.errors import InputError
from ragkit.integrations.options import refuse_unknown
from ragkit.kit import Kit
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, Hit

# Stored for ingestion's change detection, not for reading: kept in the metadata, out of prompts.
BOOKKEEPING_KEYS = ["doc_id", "doc_hash", "tokens", "section_index", "section_count"]
# The retriever's search options, and what each is to `kit.search`.
SEARCH_OPTIONS = {
    "similarity_top_k": "top_k",
    "filters": "filters",
    "score_threshold": "score_threshold",
    "mode": "mode",
    "fusion": "fusion",
}


def _named_parameters(function: Any, *, leaving: tuple[str, ...] = ()) -> dict[str, str]:
    """The keyword parameters a LlamaIndex function names, so ours track its version's."""
    return {
        name: name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD and name not in ("self", "cls", *leaving)
    }


class LlamaIndexRetriever(BaseRetriever):
    """`retrieve` and `aretrieve` over `kit.search`; `similarity_top_k` is ragkit's `top_k`, `mode` its
    search mode (dense, sparse or hybrid, as LlamaIndex's `vector_store_query_mode`), `fusion` how hybrid
    fuses (rrf or dbsf)."""

    def __init__(
        self,
        kit: Kit,
        *,
        similarity_top_k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: str = DEFAULT_MODE,
        fusion: str = DEFAULT_FUSION,
        **kwargs: Any,
    ) -> None:
        # LlamaIndex's TypeError would name its BaseRetriever and not say what is accepted.
        base = _named_parameters(BaseRetriever.__init__)
        refuse_unknown("as_llamaindex_retriever", kwargs, {**SEARCH_OPTIONS, **base})
        super().__init__(**kwargs)
        self.kit = kit
        self.similarity_top_k = similarity_top_k
        self.filters = filters
        self.score_threshold = score_threshold
        self.mode = mode
        self.fusion = fusion

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(hit) for hit in self.kit.search(query_bundle.query_str, **self._options())]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(hit) for hit in await self.kit.asearch(query_bundle.query_str, **self._options())]

    def _options(self) -> dict[str, Any]:
        return {
            "top_k": self.similarity_top_k,
            "filters": self.filters,
            "score_threshold": self.score_threshold,
            "mode": self.mode,
            "fusion": self.fusion,
        }


class LlamaIndexEmbedding(BaseEmbedding):
    """The collection's encoder for LlamaIndex code. Over-long texts are truncated, logged and counted."""

    _encoder: Encoder = PrivateAttr()

    def __init__(self, encoder: Encoder, **kwargs: Any) -> None:
        super().__init__(model_name=encoder.name, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "RagkitEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts, truncate=True).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


def query_engine(kit: Kit, llm: LLM, **options: Any) -> RetrieverQueryEngine:
    """A `RetrieverQueryEngine` over the collection; retriever options go to `LlamaIndexRetriever`, the rest
    to `RetrieverQueryEngine.from_args` (response_mode, node_postprocessors, ...)."""
    if llm is None:
        # LlamaIndex would fall back to its global default, an OpenAI model reached over the network.
        raise InputError("as_llamaindex_query_engine needs an llm: pass any LlamaIndex LLM")
    engine_options = _named_parameters(RetrieverQueryEngine.from_args, leaving=("retriever", "llm"))
    refuse_unknown("as_llamaindex_query_engine", options, {**SEARCH_OPTIONS, **engine_options})
    retriever_options = {key: options.pop(key) for key in SEARCH_OPTIONS if key in options}
    return RetrieverQueryEngine.from_args(LlamaIndexRetriever(kit, **retriever_options), llm=llm, **options)


def to_node(hit: Hit) -> NodeWithScore:
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=hit.metadata,
        excluded_llm_metadata_keys=BOOKKEEPING_KEYS,
        excluded_embed_metadata_keys=BOOKKEEPING_KEYS,
    )
    return NodeWithScore(node=node, score=hit.score)
