"""Local embedding models loaded natively from gte and sentence-transformers checkpoints.

`Encoder` (torch, transformers) loads on first use; token counting and model resolution do not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragkit.encoder.resolve import DEFAULT_MODEL, resolve_model
from ragkit.encoder.spec import EncoderSpec, ModelFacts
from ragkit.encoder.tokens import TokenCounter

if TYPE_CHECKING:
    from ragkit.encoder.encoder import Encoder, EncodeStats


def __getattr__(name: str) -> Any:
    if name in {"Encoder", "EncodeStats"}:
        from ragkit.encoder import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'ragkit.encoder' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "EncodeStats",
    "Encoder",
    "EncoderSpec",
    "ModelFacts",
    "TokenCounter",
    "resolve_model",
]
