"""The Store facade: ragkit's one door to the vector engine (Qdrant today).

Callers see plain dataclasses, plain-dict filters and ragkit errors, never Qdrant types, so that another
engine can slot in behind the same methods. The collection schema lives here too: one named dense vector,
the model recorded in the collection's metadata, keyword indexes on the fields ingestion filters on.

Threads: a Store may be shared with worker threads (an HTTP service, a pipeline's upload stage). Embedded
mode is not thread-safe inside qdrant-client, so there every engine call runs under one lock; a server
client is thread-safe and is called without one, so concurrent searches stay concurrent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ragkit.errors import (
    CollectionNotFoundError,
    InputError,
    ModelMismatchError,
    StoreError,
    StoreLockedError,
)
from ragkit.store.filters import to_qdrant_filter

log = logging.getLogger(__name__)

VECTOR_NAME = "dense"
SCHEMA_VERSION = 1
INDEXED_FIELDS = ("doc_id", "source")
# Qdrant refuses requests over 32 MiB; a quarter of that leaves room for the estimate being rough.
DEFAULT_BATCH_BYTES = 8 * 2**20
DEFAULT_BATCH_POINTS = 256
# Upper bound of one float32 as JSON text (e.g. "-1.2345678901234567e-05,").
_BYTES_PER_FLOAT = 24
_DELETE_CHUNK = 4096
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}

T = TypeVar("T")


@dataclass
class Point:
    """One section as stored: `id` from `point_id()`, the section's embedding, and its payload."""

    id: str
    vector: np.ndarray | list[float]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result: the point id, its cosine similarity to the query, and its payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection was built with (model, vector size) and how many points it holds."""

    name: str
    model: str
    dim: int
    points: int


class Store:
    """A Qdrant collection store, embedded (a folder) or remote (a server URL), behind one interface.

    Create it with `Store.open(...)`; use it as a context manager or call `close()`, because embedded mode
    holds an exclusive lock on its folder until closed.
    """

    def __init__(self, client: QdrantClient, where: str, *, local: bool, retries: int, backoff: float):
        """Private: use `Store.open`, which validates the arguments and translates opening errors."""
        self._client = client
        self._where = where
        self._local = local
        self._retries = retries
        self._backoff = backoff
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )
        self._closed = False
        # (model, dim) of collections already read, so a vector of the wrong size is reported as such
        # instead of as an engine-specific shape error.
        self._schemas: dict[str, tuple[str, int]] = {}

    @classmethod
    def open(
        cls,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30,
        retries: int = 5,
        backoff: float = 0.5,
        prefer_grpc: bool = False,
    ) -> Store:
        """Open an embedded store folder (`path`) or a Qdrant server (`url`); exactly one of them.

        A server is asked for its collections right away, so a wrong URL or a server that is down fails
        here, with retries, rather than deep inside an ingestion job. `retries` and `backoff` (seconds,
        doubled each retry) apply to every later call that fails transiently too.
        """
        if (path is None) == (url is None):
            raise InputError(
                "Store.open needs exactly one of path (an embedded store folder) or url (a server)"
            )
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise InputError(
                f"retries and backoff must be >= 0 and timeout > 0, got {retries}, {backoff}, {timeout}"
            )
        if path is not None:
            if api_key is not None:
                raise InputError(
                    "api_key only applies to a Qdrant server url, not to an embedded store folder"
                )
            folder = Path(path).expanduser()
            # Nothing in a local folder fails transiently, so there is nothing to retry.
            return cls(_open_local(folder), f"the local store {folder}", local=True, retries=0, backoff=0)
        try:
            # qdrant-client's own version check runs in a background thread and only warns, racing the
            # reachability probe below, whose error says more.
            client = QdrantClient(
                url=url,
                api_key=api_key,
                timeout=math.ceil(timeout),
                prefer_grpc=prefer_grpc,
                check_compatibility=False,
            )
        except Exception as exc:
            raise StoreError(f"cannot use Qdrant server url {url!r}: {_describe(exc)}") from exc
        store = cls(client, f"the Qdrant server at {url}", local=False, retries=retries, backoff=backoff)
        try:
            store.collections()
        except StoreError:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release the engine (and, in embedded mode, the folder lock). Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def collections(self) -> list[str]:
        """Names of all collections, sorted, so listings and error messages are stable."""
        response = self._call("list collections", self._client.get_collections)
        return sorted(c.name for c in response.collections)

    def ensure_collection(self, name: str, *, dim: int, model: str) -> CollectionInfo:
        """Create the collection on first use, or check that an existing one was built with this model.

        Mixing vectors of two models in one collection makes every score meaningless, and it would not
        fail loudly on its own when both models have the same vector size; hence the recorded model.
        """
        _check_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive int, got {dim!r}")
        if not isinstance(model, str) or not model:
            raise InputError(f"model must be a non-empty string, got {model!r}")
        if not self._call(f"look up collection {name!r}", partial(self._client.collection_exists, name)):
            self._create(name, dim, model)
        info = self.collection_info(name)
        if (info.model, info.dim) != (model, dim):
            raise ModelMismatchError(
                f"collection {name!r} in {self._where} was built with model {info.model!r} (dim {info.dim}), "
                f"but model {model!r} (dim {dim}) was requested: use that model, or another collection name"
            )
        return info

    def _create(self, name: str, dim: int, model: str) -> None:
        create = partial(
            self._client.create_collection,
            name,
            vectors_config={VECTOR_NAME: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            metadata={"model": model, "dim": dim, "ragkit_schema": SCHEMA_VERSION},
        )
        try:
            self._call(f"create collection {name!r}", create)
        except StoreError:
            # Another job (or thread) may have created it first; its schema is checked by the caller.
            if not self._call(f"look up collection {name!r}", partial(self._client.collection_exists, name)):
                raise
            return
        # Embedded mode has no payload indexes (qdrant-client only warns that they do nothing there).
        if not self._local:
            for key in INDEXED_FIELDS:
                index = partial(
                    self._client.create_payload_index,
                    name,
                    field_name=key,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                    wait=True,
                )
                self._call(f"index field {key!r} of {name!r}", index, collection=name)

    def collection_info(self, name: str) -> CollectionInfo:
        """The model and vector size recorded for a ragkit collection, and its exact point count."""
        _check_name(name)
        raw = self._call(
            f"read collection {name!r}", partial(self._client.get_collection, name), collection=name
        )
        meta = raw.config.metadata or {}
        vectors = raw.config.params.vectors
        params = vectors.get(VECTOR_NAME) if isinstance(vectors, dict) else None
        if params is None or "model" not in meta:
            raise StoreError(
                f"collection {name!r} in {self._where} was not created by ragkit: it lacks a {VECTOR_NAME!r} "
                "vector or a recorded model; use another collection name"
            )
        if meta.get("ragkit_schema") != SCHEMA_VERSION:
            raise StoreError(
                f"collection {name!r} has ragkit schema {meta.get('ragkit_schema')!r}, this ragkit reads schema "
                f"{SCHEMA_VERSION}: use a matching ragkit version, or re-ingest into a new collection"
            )
        self._schemas[name] = (meta["model"], params.size)
        return CollectionInfo(name=name, model=meta["model"], dim=params.size, points=self.count(name))

    def upsert(
        self,
        name: str,
        points: Iterable[Point],
        *,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
        max_batch_points: int = DEFAULT_BATCH_POINTS,
    ) -> int:
        """Write points in batches that stay under the server's request limit; returns how many were written.

        `points` is consumed lazily, one batch at a time, so a generator over a huge job is fine. Each batch
        is retried on transient errors, which is safe because point ids are deterministic. A failure part
        way leaves the earlier batches written: a caller that needs all-or-nothing deletes what it wrote.
        """
        _check_name(name)
        if max_batch_bytes < 1 or max_batch_points < 1:
            raise InputError("max_batch_bytes and max_batch_points must be positive")
        written = 0
        for batch in _batches(points, max_batch_bytes, max_batch_points, self._schemas.get(name)):
            write = partial(self._client.upsert, name, points=batch, wait=True)
            self._call(f"upsert {len(batch)} points into {name!r}", write, collection=name)
            log.debug("upserted a batch of %d points into %r", len(batch), name)
            written += len(batch)
        return written

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; ids that do not exist are ignored, so a retried delete is harmless."""
        _check_name(name)
        checked = [_check_id(i) for i in ids]
        for start in range(0, len(checked), _DELETE_CHUNK):
            selector = models.PointIdsList(points=checked[start : start + _DELETE_CHUNK])
            delete = partial(self._client.delete, name, points_selector=selector, wait=True)
            self._call(f"delete points from {name!r}", delete, collection=name)

    def delete_where(self, name: str, filters: dict[str, Any]) -> None:
        """Delete every point matching `filters`, e.g. `{"doc_id": "abc"}` to drop one document."""
        _check_name(name)
        condition = to_qdrant_filter(filters)
        if condition is None:
            raise InputError(
                "delete_where needs at least one filter condition; an empty one would delete all points"
            )
        delete = partial(
            self._client.delete, name, points_selector=models.FilterSelector(filter=condition), wait=True
        )
        self._call(f"delete points matching {filters!r} from {name!r}", delete, collection=name)

    def scroll_payloads(
        self,
        name: str,
        fields: Sequence[str],
        filters: dict[str, Any] | None = None,
        *,
        page_size: int = 1000,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield `(id, payload)` for every matching point, with only `fields` of the payload and no vectors.

        Change detection reads a few small fields of every point; fetching vectors and section text too
        would multiply the traffic by thousands. No `fields` yields ids with empty payloads. Arguments are
        checked now, not at the first `next()`.
        """
        _check_name(name)
        if isinstance(fields, str):
            raise InputError(f"fields must be a sequence of payload keys, not the string {fields!r}")
        if page_size < 1:
            raise InputError(f"page_size must be positive, got {page_size}")
        return self._scroll(name, list(fields) or False, to_qdrant_filter(filters), page_size)

    def _scroll(
        self, name: str, fields: list[str] | bool, condition: models.Filter | None, page_size: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        offset = None
        while True:
            page = partial(
                self._client.scroll,
                name,
                scroll_filter=condition,
                limit=page_size,
                offset=offset,
                with_payload=fields,
                with_vectors=False,
            )
            records, offset = self._call(f"scroll {name!r}", page, collection=name)
            for record in records:
                yield str(record.id), record.payload or {}
            if offset is None:
                return

    def count(self, name: str, filters: dict[str, Any] | None = None) -> int:
        """Exact number of points matching `filters` (all points without)."""
        _check_name(name)
        count = partial(self._client.count, name, count_filter=to_qdrant_filter(filters), exact=True)
        return self._call(f"count points in {name!r}", count, collection=name).count

    def search(
        self,
        name: str,
        vector: np.ndarray | Sequence[float],
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """The `top_k` points nearest to `vector` by cosine similarity, best first, with their payloads."""
        _check_name(name)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive int, got {top_k!r}")
        query = partial(
            self._client.query_points,
            name,
            query=_vector(vector, "the query vector", self._schemas.get(name)),
            using=VECTOR_NAME,
            limit=top_k,
            query_filter=to_qdrant_filter(filters),
            score_threshold=score_threshold,
            with_payload=True,
            with_vectors=False,
        )
        response = self._call(f"search {name!r}", query, collection=name)
        return [Hit(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in response.points]

    def _call(self, what: str, call: Callable[[], T], *, collection: str | None = None) -> T:
        """Run one engine call: retried with exponential backoff when the failure is transient, and any
        engine exception translated into a StoreError that says what was being done, where, and why."""
        if self._closed:
            raise StoreError(f"cannot {what}: the store ({self._where}) is closed")
        attempt = 0
        while True:
            try:
                with self._lock:
                    return call()
            except Exception as exc:
                if not _is_transient(exc):
                    raise self._translate(what, exc, collection) from exc
                if attempt == self._retries:
                    raise StoreError(
                        f"cannot {what}: {self._where} failed {attempt + 1} times, last with {_describe(exc)}. "
                        "Check that the server is running and reachable at that address"
                    ) from exc
                delay = max(self._backoff * 2**attempt, getattr(exc, "retry_after_s", 0))
                log.warning("%s: %s from %s; retrying in %.2fs", what, _describe(exc), self._where, delay)
                time.sleep(delay)
                attempt += 1

    def _translate(self, what: str, exc: Exception, collection: str | None) -> StoreError:
        # Engines word "no such collection" differently (a ValueError locally, HTTP 404 or gRPC NOT_FOUND
        # remotely); asking is the one check that holds for every engine.
        if collection is not None:
            with contextlib.suppress(Exception), self._lock:
                if not self._client.collection_exists(collection):
                    return CollectionNotFoundError(self._not_found(collection))
        return StoreError(f"cannot {what} in {self._where}: {_describe(exc)}")

    def _not_found(self, name: str) -> str:
        try:
            existing = ", ".join(self.collections()) or "none"
        except StoreError:
            existing = "unknown"
        return f"collection {name!r} not found in {self._where} (existing collections: {existing})"


def _open_local(folder: Path) -> QdrantClient:
    try:
        # Safe because every call on this client runs under the Store's lock.
        return QdrantClient(path=str(folder), force_disable_check_same_thread=True)
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise StoreError(f"cannot open the local store {folder}: {exc}") from exc
        raise StoreLockedError(
            f"the local store {folder} is in use by another ragkit process (for example a running "
            "`ragkit serve`), and an embedded store can only be opened by one process at a time. "
            "Stop that process, or run a Qdrant server and give every process its address with --url"
        ) from exc
    except Exception as exc:
        raise StoreError(f"cannot open the local store {folder}: {_describe(exc)}") from exc


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.strip("."):
        raise InputError(
            f"collection name {name!r} is invalid: use 1 to 255 characters from A-Z a-z 0-9 _ . - "
            "(and not only dots)"
        )


def _check_id(point_id: str) -> str:
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise InputError(
            f"point id {point_id!r} is not a UUID; make ids with ragkit.store.point_id()"
        ) from None


def _vector(vector: np.ndarray | Sequence[float], what: str, schema: tuple[str, int] | None) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"{what} must be a non-empty 1-D vector, got shape {array.shape}")
    if schema is not None and array.size != schema[1]:
        raise InputError(
            f"{what} has {array.size} dimensions, but the collection holds {schema[1]}-dimensional vectors "
            f"of model {schema[0]!r}"
        )
    if not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN or infinity (an encoder overflow?)")
    return array.tolist()


def _batches(
    points: Iterable[Point], max_bytes: int, max_points: int, schema: tuple[str, int] | None
) -> Iterator[list[models.PointStruct]]:
    """Group points so each request stays under `max_bytes` of JSON (estimated) and `max_points` points.

    A single point over the byte cap still goes, alone: it cannot be split, and the server has the last word.
    """
    batch: list[models.PointStruct] = []
    size = 0
    for point in points:
        vector = _vector(point.vector, f"the vector of point {point.id!r}", schema)
        estimate = len(json.dumps(point.payload, default=str)) + _BYTES_PER_FLOAT * len(vector) + 100
        if batch and (size + estimate > max_bytes or len(batch) >= max_points):
            yield batch
            batch, size = [], 0
        batch.append(
            models.PointStruct(id=_check_id(point.id), vector={VECTOR_NAME: vector}, payload=point.payload)
        )
        size += estimate
    if batch:
        yield batch


def _is_transient(exc: Exception) -> bool:
    """Errors worth retrying: the server was unreachable, overloaded or slow, not wrong about the request."""
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


def _describe(exc: BaseException) -> str:
    """One line for a person: the server's own error text rather than a raw response dump."""
    if isinstance(exc, ResponseHandlingException):
        return _describe(exc.source)
    if isinstance(exc, UnexpectedResponse):
        try:
            detail = exc.structured()["status"]["error"]
        except Exception:
            detail = exc.content[:200].decode(errors="replace")
        return f"HTTP {exc.status_code} {exc.reason_phrase}: {detail}"
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"gRPC {exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
