"""Local embedding models loaded natively from gte and sentence-transformers checkpoints."""

from ragkit.encoder.encoder import Encoder, EncodeStats
from ragkit.encoder.resolve import DEFAULT_MODEL, resolve_model

__all__ = ["DEFAULT_MODEL", "EncodeStats", "Encoder", "resolve_model", "TokenCounter"]
