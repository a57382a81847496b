"""ragkit: long-document retrieval with whole-section gte embeddings in Qdrant.

The heavy parts (torch, transformers, qdrant-client) load on first use, so `import ragkit`, the CLI's
start and parsing workers stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ragkit.errors import (
    CollectionNotFoundError,
    InputError,
    InputTooLongError,
    ModelLoadError,
    ModelMismatchError,
    ParseError,
    RagkitError,
    StoreError,
    StoreLockedError,
)

if TYPE_CHECKING:
    from ragkit.config import Settings
    from ragkit.encoder import Encoder
    from ragkit.kit import Kit, open
    from ragkit.llm import LLM, LLMError
    from ragkit.query_engine import QueryEngine, QueryResponse
    from ragkit.retrieval import Hit, Retriever
    from ragkit.store import Bm25Settings, CollectionOptions, Store

__version__ = "0.1.0"

_LAZY = {
    "Hit": "ragkit.retrieval",
    "Retriever": "ragkit.retrieval",
    "Store": "ragkit.store",
    "CollectionOptions": "ragkit.store",
    "Bm25Settings": "ragkit.store",
    "Encoder": "ragkit.encoder",
    "Kit": "ragkit.kit",
    "open": "ragkit.kit",
    "Settings": "ragkit.config",
    "LLM": "ragkit.llm",
    "LLMError": "ragkit.llm",
    "QueryEngine": "ragkit.query_engine",
    "QueryResponse": "ragkit.query_engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")


__all__ = [
    "Bm25Settings",
    "CollectionNotFoundError",
    "CollectionOptions",
    "Encoder",
    "Hit",
    "InputError",
    "InputTooLongError",
    "Kit",
    "LLM",
    "LLMError",
    "ModelLoadError",
    "ModelMismatchError",
    "ParseError",
    "QueryEngine",
    "QueryResponse",
    "RagkitError",
    "Retriever",
    "Settings",
    "Store",
    "StoreError",
    "StoreLockedError",
    "open",
]
