"""The plain types the Store facade speaks, and the two that pass between the facade and an engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragkit.store.bm25 import SparseVector
from ragkit.store.filters import Condition
from ragkit.store.schema import Schema


@dataclass
class Point:
    """One section as stored: `id` from `point_id()`, the section's embedding, and its payload.

    `text` is the text that was embedded (breadcrumb + section), of which the store computes the BM25
    vector; without it, the payload's `text` is used.
    """

    id: str
    vector: np.ndarray | list[float]
    payload: dict[str, Any] = field(default_factory=dict)
    text: str | None = None


@dataclass(frozen=True)
class Hit:
    """A search result: the point id, its score in the mode searched, and its payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection was built with (model, vector size, schema) and how many points it holds."""

    name: str
    model: str
    dim: int
    points: int
    schema: Schema | None = None


@dataclass(frozen=True)
class StoredPoint:
    """A point ready for an engine: checked id, dense values, BM25 vector, payload, and the length of the
    payload as JSON (measured once, for the request size and the disk-space check alike)."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]
    payload_bytes: int


@dataclass(frozen=True)
class Query:
    """One search as an engine runs it: in hybrid mode both vectors are set and fused in the engine."""

    mode: str
    dense: list[float] | None
    sparse: SparseVector | None
    limit: int
    conditions: tuple[Condition, ...]
    score_threshold: float | None
    fusion: str
    candidates: int
    exact: bool = False
    quantized: bool = False  # the collection keeps an int8 copy: search it, rescore with the originals
