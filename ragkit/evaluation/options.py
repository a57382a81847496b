"""The choices of an evaluation run, apart from the runner so that they can be made without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Strategy = Literal["section", "chunk"]
STRATEGIES: tuple[Strategy, ...] = ("section", "chunk")


@dataclass(frozen=True)
class EvalOptions:
    """How to cut documents (whole sections, or windows of `chunk_tokens`), how many documents each
    query ranks, in which search mode (dense, sparse or hybrid), and how hybrid fuses (rrf or dbsf)."""

    strategy: Strategy = "section"
    chunk_tokens: int = 512
    top_k: int = 100
    mode: str = "hybrid"
    fusion: str = "rrf"
