"""The remote engine: a Qdrant server or cluster through qdrant-client (or its in-memory engine, ":memory:").

The schema is the same as Edge's: a cosine `dense` vector, a `bm25` sparse vector with the IDF modifier,
the recorded schema as collection metadata, keyword indexes on doc_id and source. BM25 vectors arrive
computed (ragkit.store.bm25), so the server needs no inference service and matches Edge term for term;
hybrid search is one query, two prefetches fused by the server. The server builds its own HNSW index in
the background, without blocking searches, so `build_index` has nothing to do.

qdrant-client's in-memory engine accepts the same requests as a server, which is how this code is
tested here; no test runs against a real server (README, "Engines").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import httpx
from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ragkit.errors import StoreError
from ragkit.store import schema as names
from ragkit.store.base import Engine
from ragkit.store.bm25 import SparseVector, plain_vectors
from ragkit.store.filters import AnyOf, Between, Condition, Equals
from ragkit.store.schema import CollectionOptions, Schema, SchemaError
from ragkit.store.types import Hit, Query, StoredPoint

MEMORY = ":memory:"
# An index declared after creation is recorded under a metadata key of its own: the server merges a
# metadata update into the stored keys, so two processes adding different fields both keep theirs,
# where rewriting the whole `indexes` map would let the later writer drop the other's field.
_ADDED_INDEX = "index:"
_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_INDEX_TYPES = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "tenant": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
}


class ServerEngine(Engine):
    """Collections on one Qdrant server or cluster; a server client is thread-safe, so calls need no lock."""

    def __init__(self, url: str, *, api_key: str | None, timeout: float, prefer_grpc: bool) -> None:
        self.where = "qdrant-client's in-memory engine" if url == MEMORY else f"the Qdrant server at {url}"
        try:
            if url == MEMORY:
                # A Python emulation, not safe for threads, unlike a server client.
                self.serial = threading.RLock()
                self._client = QdrantClient(location=MEMORY)
            else:
                # qdrant-client's own version check runs in a background thread and only warns, racing
                # the reachability probe that Store.open makes next, whose error says more.
                self._client = QdrantClient(
                    url=url,
                    api_key=api_key,
                    timeout=math.ceil(timeout),
                    prefer_grpc=prefer_grpc,
                    check_compatibility=False,
                )
        except Exception as exc:
            raise StoreError(f"cannot use Qdrant server url {url!r}: {self.describe(exc)}") from exc

    def collections(self) -> list[str]:
        return sorted(c.name for c in self._client.get_collections().collections)

    def exists(self, name: str) -> bool:
        return self._client.collection_exists(name)

    def create(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        # Resumable: a transient failure after the collection was made retries this whole call, which
        # then only adds the indexes (adding an index that exists changes nothing).
        if not self._client.collection_exists(name):
            self._create(name, schema, options)
        for key, kind in schema.indexes.items():
            self._index(name, key, kind)

    def _create(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        quantization = (
            models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
            if schema.quantize == "int8"
            else None
        )
        self._client.create_collection(
            name,
            vectors_config={
                # Quantized: the int8 copy in RAM, the float32 originals on disk for rescoring. Stated with
                # on_disk / always_ram, which every server takes; the `memory` tiers need Qdrant 1.19.
                names.DENSE: models.VectorParams(
                    size=schema.dim,
                    distance=models.Distance.COSINE,
                    quantization_config=quantization,
                    on_disk=True if quantization is not None else None,
                )
            },
            sparse_vectors_config={names.SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(m=names.HNSW_M, ef_construct=names.HNSW_EF_CONSTRUCT),
            shard_number=options.shards,
            replication_factor=options.replicas,
            write_consistency_factor=options.write_consistency,
            metadata=schema.to_json(),
        )

    def cluster(self, name: str) -> dict[str, int | None]:
        params = self._client.get_collection(name).config.params
        return {
            "shards": params.shard_number,
            "replicas": params.replication_factor,
            "write_consistency": params.write_consistency_factor,
        }

    def delete_collection(self, name: str) -> None:
        if not self._client.collection_exists(name):
            return
        # Another program's collection in the same Qdrant is not ragkit's to delete.
        if "model" not in (self._client.get_collection(name).config.metadata or {}):
            raise SchemaError(
                f"collection {name!r} in {self.where} was not created by ragkit, so ragkit does not delete "
                "it: use Qdrant's own API if it should go"
            )
        self._client.delete_collection(name)

    def schema(self, name: str) -> Schema:
        config = self._client.get_collection(name).config
        vectors = config.params.vectors
        sparse = config.params.sparse_vectors or {}
        if not isinstance(vectors, dict) or names.DENSE not in vectors or names.SPARSE not in sparse:
            meta = config.metadata or {}
            if "model" in meta:  # ragkit's, of an older schema: say which, and what to do
                Schema.from_json(meta, f"collection {name!r} in {self.where}")
            raise SchemaError(
                f"collection {name!r} in {self.where} was not created by ragkit: it lacks a "
                f"{names.DENSE!r} or {names.SPARSE!r} vector or a recorded model; use another collection name"
            )
        meta = config.metadata or {}
        schema = Schema.from_json(meta, f"collection {name!r} in {self.where}")
        for key, kind in sorted(meta.items()):
            if key.startswith(_ADDED_INDEX):
                schema = schema.with_index(key.removeprefix(_ADDED_INDEX), kind)
        return schema

    def add_indexes(self, name: str, indexes: Mapping[str, str]) -> None:
        recorded = self.schema(name).indexes
        for field, kind in indexes.items():
            if recorded.get(field) != kind:
                self._index(name, field, kind)
                self._client.update_collection(name, metadata={_ADDED_INDEX + field: kind})

    def _index(self, name: str, field: str, kind: str) -> None:
        self._client.create_payload_index(name, field_name=field, field_schema=_INDEX_TYPES[kind], wait=True)

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        structs = [
            models.PointStruct(
                id=p.id, vector={names.DENSE: p.dense, names.SPARSE: _sparse(p.sparse)}, payload=p.payload
            )
            for p in points
        ]
        self._client.upsert(name, points=structs, wait=True)

    def sync(self, name: str) -> None:
        pass  # each upsert was acknowledged with wait=True: applied and in the server's WAL

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        self._client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def delete_where(self, name: str, conditions: Sequence[Condition]) -> None:
        selector = models.FilterSelector(filter=_filter(conditions))
        self._client.delete(name, points_selector=selector, wait=True)

    def scroll(
        self,
        name: str,
        fields: list[str] | bool,
        conditions: Sequence[Condition],
        limit: int,
        offset: Any,
        with_vectors: bool = False,
    ) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any] | None]], Any]:
        records, next_offset = self._client.scroll(
            name,
            scroll_filter=_filter(conditions) if conditions else None,
            limit=limit,
            offset=offset,
            with_payload=fields,
            with_vectors=with_vectors,
        )
        return [
            (str(r.id), r.payload or {}, plain_vectors(r.vector) if with_vectors else None) for r in records
        ], next_offset

    def count(self, name: str, conditions: Sequence[Condition]) -> int:
        condition = _filter(conditions) if conditions else None
        return self._client.count(name, count_filter=condition, exact=True).count

    def query(self, name: str, query: Query) -> list[Hit]:
        condition = _filter(query.conditions) if query.conditions else None
        params = models.SearchParams(
            hnsw_ef=names.HNSW_EF,
            exact=query.exact,
            quantization=models.QuantizationSearchParams(
                rescore=True, oversampling=names.QUANTIZED_OVERSAMPLING
            )
            if query.quantized
            else None,
        )
        if query.mode == "hybrid":
            response = self._client.query_points(
                name,
                prefetch=[
                    models.Prefetch(
                        query=query.dense,
                        using=names.DENSE,
                        filter=condition,
                        limit=query.candidates,
                        params=params,
                    ),
                    models.Prefetch(
                        query=_sparse(query.sparse),
                        using=names.SPARSE,
                        filter=condition,
                        limit=query.candidates,
                    ),
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=names.RRF_K))
                if query.fusion == "rrf"
                else models.FusionQuery(fusion=models.Fusion.DBSF),
                limit=query.limit,
                score_threshold=query.score_threshold,
                with_payload=True,
            )
        else:
            dense = query.mode == "dense"
            response = self._client.query_points(
                name,
                query=query.dense if dense else _sparse(query.sparse),
                using=names.DENSE if dense else names.SPARSE,
                query_filter=condition,
                limit=query.limit,
                score_threshold=query.score_threshold,
                search_params=params if dense else None,
                with_payload=True,
            )
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in response.points]

    def unindexed(self, name: str) -> int:
        self._client.get_collection(name)  # a missing collection is an error, as on a folder
        return 0

    def build_index(self, name: str) -> bool:
        self._client.get_collection(name)
        return False

    def is_transient(self, exc: Exception) -> bool:
        if isinstance(exc, ResponseHandlingException):
            exc = exc.source
        if isinstance(exc, ResourceExhaustedResponse):
            return True
        if isinstance(exc, UnexpectedResponse):
            return exc.status_code is not None and (exc.status_code == 429 or exc.status_code >= 500)
        if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
            return exc.code() in _TRANSIENT_GRPC
        if isinstance(exc, httpx.UnsupportedProtocol):
            return False
        return isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError))

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, ResponseHandlingException):
            return self.describe(exc.source)
        if isinstance(exc, UnexpectedResponse):
            try:
                detail = exc.structured()["status"]["error"]
            except Exception:
                detail = exc.content[:200].decode(errors="replace")
            return f"HTTP {exc.status_code} {exc.reason_phrase}: {detail}"
        if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
            return f"gRPC {exc.code().name}: {exc.details()}"
        return f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._client.close()


def _sparse(vector: SparseVector | None) -> models.SparseVector:
    assert vector is not None
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _filter(conditions: Sequence[Condition]) -> models.Filter:
    return models.Filter(must=[_condition(c) for c in conditions])


def _condition(condition: Condition) -> models.FieldCondition:
    if isinstance(condition, Equals):
        return models.FieldCondition(key=condition.key, match=models.MatchValue(value=condition.value))
    if isinstance(condition, AnyOf):
        return models.FieldCondition(key=condition.key, match=models.MatchAny(any=list(condition.values)))
    assert isinstance(condition, Between)
    return models.FieldCondition(key=condition.key, range=models.Range(**condition.bounds))
