"""ragkit: long-document retrieval with whole-section gte embeddings in Qdrant."""

from ragkit.encoder import Encoder
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

__version__ = "0.1.0"

__all__ = [
    "CollectionNotFoundError",
    "Encoder",
    "InputError",
    "InputTooLongError",
    "ModelLoadError",
    "ModelMismatchError",
    "ParseError",
    "RagkitError",
    "StoreError",
    "StoreLockedError",
]
