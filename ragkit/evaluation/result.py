"""The outcome of one evaluation: what ran, how fast, how well; as text for people and as a dict for --json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragkit.evaluation.metrics import LABELS

SCHEMA = "ragkit.eval/1"


@dataclass
class EvalResult:
    """One dataset, one model, one strategy. `metrics` are fractions (0..1), keyed as in `METRICS`."""

    dataset: str
    model: str
    device: str
    dtype: str
    strategy: str
    mode: str  # dense, sparse or hybrid
    fusion: str  # rrf or dbsf: how hybrid fused its lists
    max_tokens: int  # per section, or per chunk after clamping to the model's limit
    chunk_tokens: int | None  # as requested; None for sections
    top_k: int
    collection: str
    documents: int
    queries: int
    units: int
    units_embedded: int
    units_reused: int
    tokens_embedded: int
    embed_seconds: float
    search_seconds: float
    short_rankings: int
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_embedded / self.embed_seconds if self.embed_seconds else 0.0

    @property
    def queries_per_second(self) -> float:
        return self.queries / self.search_seconds if self.search_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The --json form; keys and their meaning only ever grow, under the same `schema`."""
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "strategy": self.strategy,
            "mode": self.mode,
            "fusion": self.fusion,
            "max_tokens": self.max_tokens,
            "chunk_tokens": self.chunk_tokens,
            "top_k": self.top_k,
            "collection": self.collection,
            "documents": self.documents,
            "queries": self.queries,
            "units": self.units,
            "units_embedded": self.units_embedded,
            "units_reused": self.units_reused,
            "tokens_embedded": self.tokens_embedded,
            "embed_seconds": round(self.embed_seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "search_seconds": round(self.search_seconds, 3),
            "queries_per_second": round(self.queries_per_second, 2),
            "short_rankings": self.short_rankings,
            "metrics": dict(self.metrics),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """Several lines: the set-up, the timings, the metrics, then any notes."""
        kind = "sections" if self.strategy == "section" else "chunks"
        lines = [
            f"dataset    {self.dataset}: {self.documents:,} documents, {self.queries:,} judged queries",
            f"model      {self.model} on {self.device} ({self.dtype})",
            f"strategy   {self.strategy}: {kind} of up to {self.max_tokens:,} tokens; "
            f"top {self.top_k} documents per query (a document scores as its best {kind[:-1]})",
            f"index      {self.units:,} {kind} in collection {self.collection!r}: "
            f"{self.units_embedded:,} embedded, {self.units_reused:,} already stored",
            _embedding_line(self),
            f"search     {self.queries:,} queries, {self._mode()}, in {self.search_seconds:.1f} s "
            f"({self.queries_per_second:,.1f} queries/s)",
            "",
            *(f"{LABELS[name]:<11}{value:.4f}" for name, value in self.metrics.items()),
        ]
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def _mode(self) -> str:
        return (
            f"{self.mode} mode ({self.fusion.upper()} fusion)"
            if self.mode == "hybrid"
            else f"{self.mode} mode"
        )


def _embedding_line(result: EvalResult) -> str:
    if not result.units_embedded:
        return "embedding  nothing to embed: every unit was already in the store"
    return (
        f"embedding  {result.tokens_embedded:,} tokens in {result.embed_seconds:.1f} s "
        f"({result.tokens_per_second:,.0f} tokens/s)"
    )
