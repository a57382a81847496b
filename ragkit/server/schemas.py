"""Request and response bodies. Requests are strict: unknown fields and wrong types are refused with a
message naming the field, because a silently ignored typo (`topk`) returns plausible, wrong results.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragkit.query_engine import Source
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE
from ragkit.store.schema import Fusion, SearchMode

MAX_QUERY_CHARS = 4096
MAX_TOP_K = 100
# No leading dot: ".", ".." and hidden names are path tricks wherever a name becomes a folder.
COLLECTION_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to search for")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="how many sections to return")
    filters: dict[str, Any] | None = Field(
        None,
        description='payload conditions, all of which must hold: {"source": "a.pdf"}, '
        '{"doc_id": ["x", "y"]} (any of), {"page_start": {"gte": 3}} (range)',
    )
    score_threshold: float | None = Field(
        None,
        allow_inf_nan=False,
        description="lowest score kept, in the mode's own scale: a cosine (dense), a BM25 score (sparse), "
        "a fused rank score (hybrid; RRF gives at most 0.2)",
    )
    mode: SearchMode = Field(
        DEFAULT_MODE,
        description="dense (embeddings), sparse (BM25 keywords) or hybrid (both, fused by rank in Qdrant)",
    )
    fusion: Fusion = Field(
        DEFAULT_FUSION,
        description="how hybrid fuses its two lists: rrf (reciprocal rank) or dbsf (distribution-based)",
    )
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN, description="defaults to the server's collection"
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("the query is blank: send some text to search for")
        return query

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _int_is_a_float(cls, value: Any) -> Any:
        # JSON has one number type: `1` is as good a threshold as `1.0`, also in strict mode.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class QueryRequest(SearchRequest):
    context_tokens: int = Field(
        3000, ge=64, le=32_768, description="token budget of the sources handed to the answer"
    )


class HitOut(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitOut]


class QueryResponse(BaseModel):
    answer: str
    sources: list[Source]  # the query engine's own dataclass: one definition of a source
    timings: dict[str, float]


class CollectionOut(BaseModel):
    name: str
    model: str
    dim: int
    points: int


class CollectionsResponse(BaseModel):
    collections: list[CollectionOut]


class DeleteResponse(BaseModel):
    collection: str
    doc_id: str
    deleted: int


class CollectionDeleted(BaseModel):
    collection: str
    points: int | None = Field(description="the points it held (null for one that ragkit could not read)")


class IndexResponse(BaseModel):
    collection: str
    seconds: float = Field(description="how long the build took (searches went on; writes waited)")


class JobOut(BaseModel):
    id: str
    collection: str
    filename: str
    doc_id: str
    status: str = Field(description="queued, running, succeeded or failed")
    created: float
    started: float | None
    finished: float | None
    report: dict[str, Any] | None = Field(description="the ingestion report, once the job has run")
    error: str | None


class ErrorOut(BaseModel):
    detail: str
