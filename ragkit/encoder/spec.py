"""The means to load an encoder (a model and a device), for jobs that load it somewhere else.

A loaded `Encoder` is a model in memory, bound to one device; a job spread over processes or hosts
ships this instead, and each place that encodes loads the model once. The place that plans the job
only needs what the checkpoint's configs and tokenizer say (`describe`), never the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragkit.encoder.resolve import resolve_model
from ragkit.encoder.tokens import TokenCounter

if TYPE_CHECKING:
    from ragkit.encoder.encoder import Encoder


@dataclass(frozen=True)
class ModelFacts:
    """What planning a job needs of a model: its recorded name, vector size, token limit and tokenizer."""

    name: str
    dim: int
    max_length: int
    token_counter: TokenCounter


@dataclass(frozen=True)
class EncoderSpec:
    """A model (alias, hub id or directory, as `Encoder.from_pretrained` takes it) and a device."""

    model: str
    device: str = "auto"

    def load(self, *, device: str | None = None) -> Encoder:
        """The encoder, on `device` when given (a worker that was handed a GPU), else on `self.device`."""
        from ragkit.encoder.encoder import Encoder

        return Encoder.from_pretrained(self.model, device=device or self.device)

    def describe(self) -> ModelFacts:
        """The model's facts from its configs and tokenizer, the same as a loaded `Encoder` reports."""
        from ragkit.encoder.checkpoint import inspect_checkpoint, load_tokenizer

        resolved = resolve_model(self.model)
        checkpoint = inspect_checkpoint(resolved.path)
        return ModelFacts(
            name=resolved.name,
            dim=int(checkpoint.config.hidden_size),
            max_length=checkpoint.max_length,
            token_counter=TokenCounter(load_tokenizer(checkpoint.path)),
        )
