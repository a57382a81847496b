"""The Store facade: ragkit's one door to Qdrant, embedded (Qdrant Edge, a folder) or remote (a server URL).

Callers see plain dataclasses, plain-dict filters and ragkit errors, never an engine's types, and never
branch on the engine. The facade checks every input, cuts writes into batches, computes BM25 vectors,
retries what failed transiently and words every failure the same way; an engine (`ragkit.store.base`)
only runs checked requests. This is qdrant-client's own split of `QdrantClient` over `QdrantLocal` and
`QdrantRemote`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ragkit.errors import (
    CollectionNotFoundError,
    InputError,
    ModelMismatchError,
    RagkitError,
    StoreError,
)
from ragkit.store import bm25
from ragkit.store.base import Engine
from ragkit.store.filters import parse_filters
from ragkit.store.schema import (
    HYBRID_CANDIDATES,
    HYBRID_MIN_CANDIDATES,
    CollectionOptions,
    Fusion,
    Schema,
    SearchMode,
    check_fusion,
    check_mode,
    needs_vector,
)
from ragkit.store.types import CollectionInfo, Hit, Point, Query, StoredPoint

log = logging.getLogger(__name__)

# Qdrant refuses requests over 32 MiB; a quarter of that leaves room for the estimate being rough.
DEFAULT_BATCH_BYTES = 8 * 2**20
DEFAULT_BATCH_POINTS = 256
# Upper bound of one float32 as JSON text (e.g. "-1.2345678901234567e-05,"), and of one sparse term.
_BYTES_PER_FLOAT = 24
_BYTES_PER_TERM = 36
_DELETE_CHUNK = 4096
# A search fetches past top_k while a tie crosses the cut, up to this many hits (a query that ties
# everything, such as BM25 of a word in every section, would otherwise fetch the whole collection).
TIE_FETCH_LIMIT = 1024
# Hits fetched past top_k at first. RRF ties come in pairs (a point at rank r of one list only ties one
# at rank r of the other only), so with one extra hit an odd top_k split a pair and needed a second
# query in 290 of 300 hybrid searches (10k clustered points); with two, none did.
TIE_MARGIN = 2
# Engines take a count of results as an unsigned 64-bit int (Edge raised a bare "OverflowError: int too
# big to convert" past it), and a hybrid search asks each of its lists for HYBRID_CANDIDATES x top_k.
MAX_PAGE_SIZE = 2**64 - 1
MAX_TOP_K = MAX_PAGE_SIZE // HYBRID_CANDIDATES  # 2**62 - 1
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Payload integers both engines store exactly: signed and unsigned 64-bit.
PAYLOAD_INT_MIN, PAYLOAD_INT_MAX = -(2**63), 2**64 - 1

T = TypeVar("T")


class Store:
    """Qdrant collections behind one interface, whichever engine holds them.

    Create it with `Store.open(...)`; use it as a context manager or call `close()`, because an embedded
    store holds an exclusive lock on its folder until closed. A Store may be shared between threads.
    """

    def __init__(self, engine: Engine, *, retries: int, backoff: float) -> None:
        """Private: use `Store.open`, which validates the arguments and translates opening errors."""
        self._engine = engine
        self._where = engine.where
        self._retries = retries
        self._backoff = backoff
        self._closed = False
        # Schemas of collections already read: vector sizes are checked, and BM25 settings applied,
        # without asking the engine each time.
        self._schemas: dict[str, Schema] = {}

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
        """Open an embedded store folder (`path`, Qdrant Edge) or a Qdrant server (`url`); exactly one.

        `url=":memory:"` is qdrant-client's in-memory engine, which takes the same requests as a server
        (for tests of the server path). A server is asked for its collections right away, so a wrong URL
        or a server that is down fails here, with retries, rather than deep inside an ingestion job.
        `retries` and `backoff` (seconds, doubled each retry) apply to every later transient failure.
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
            from ragkit.store.edge import EdgeEngine

            folder = Path(path).expanduser()
            try:
                engine: Engine = EdgeEngine(folder)
            except RagkitError:
                raise
            except Exception as exc:
                raise StoreError(
                    f"cannot open the local store {folder}: {type(exc).__name__}: {exc}"
                ) from exc
            # Nothing in a local folder fails transiently, so there is nothing to retry.
            return cls(engine, retries=0, backoff=0)
        from ragkit.store.server import ServerEngine

        store = cls(
            ServerEngine(url, api_key=api_key, timeout=timeout, prefer_grpc=prefer_grpc),
            retries=retries,
            backoff=backoff,
        )
        try:
            store.collections()
        except StoreError:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release the engine (and, for a folder, its lock). Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._engine.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The engine in words, for messages: "the local store DIR" or "the Qdrant server at URL"."""
        return self._where

    def collections(self) -> list[str]:
        """Names of all collections, sorted, so listings and error messages are stable."""
        return self._call("list collections", self._engine.collections)

    def ensure_collection(
        self, name: str, *, dim: int, model: str, options: CollectionOptions | None = None
    ) -> CollectionInfo:
        """Create the collection on first use, or check that an existing one was built with this model.

        Mixing vectors of two models in one collection makes every score meaningless, and it would not
        fail loudly on its own when both models have the same vector size; hence the recorded model.
        `options` shape a new collection (BM25, indexes, quantization, sharding); on an existing one,
        declared indexes are added and BM25 settings that differ from the recorded ones are an error.
        """
        _check_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive int, got {dim!r}")
        if not isinstance(model, str) or not model:
            raise InputError(f"model must be a non-empty string, got {model!r}")
        options = options or CollectionOptions()
        if options.cluster() and self._engine.embedded:
            raise InputError(
                "shards, replicas and write consistency are settings of a Qdrant cluster; an embedded "
                f"store ({self._where}) is one shard on one machine: drop them, or pass --url"
            )
        if not self._call(f"look up collection {name!r}", partial(self._engine.exists, name)):
            schema = Schema.build(model=model, dim=dim, options=options)
            bm25.check(schema.bm25, f"collection {name!r}")
            self._create(name, schema, options)
        info = self.collection_info(name)
        if (info.model, info.dim) != (model, dim):
            raise ModelMismatchError(
                f"collection {name!r} in {self._where} was built with model {info.model!r} (dim {info.dim}), "
                f"but model {model!r} (dim {dim}) was requested: use that model, or another collection name"
            )
        assert info.schema is not None
        self._check_built_as_asked(name, info.schema, options)
        missing = {key: kind for key, kind in options.indexes.items() if info.schema.indexes.get(key) != kind}
        if missing:
            fields = ", ".join(map(repr, missing))
            self._call(f"index {fields} of {name!r}", partial(self._engine.add_indexes, name, missing))
            self._schemas.pop(name, None)
            return self.collection_info(name)
        return info

    def _check_built_as_asked(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        """Options that only shape a new collection must match an existing one, or they would be ignored."""
        if options.bm25 is not None and options.bm25 != schema.bm25:
            raise InputError(
                f"collection {name!r} was built with BM25 settings {schema.bm25}, not {options.bm25}: "
                "BM25 settings are fixed when a collection is created; use another collection name, or delete this "
                f"one (ragkit store delete {name}) and ingest again"
            )
        if options.quantize is not None and options.quantize != schema.quantize:
            raise InputError(
                f"collection {name!r} was built with quantize={schema.quantize}, not {options.quantize}: "
                "quantization is fixed when a collection is created; use another collection name, or delete this "
                f"one (ragkit store delete {name}) and ingest again"
            )
        asked = options.cluster()
        if not asked:
            return
        actual = self._call(f"read collection {name!r}", partial(self._engine.cluster, name), collection=name)
        # An engine that does not report a setting (qdrant-client's in-memory one) cannot contradict it.
        if any(actual.get(key) not in (None, value) for key, value in asked.items()):
            raise InputError(
                f"collection {name!r} in {self._where} has {_settings(actual)}, not {_settings(asked)}: these "
                "are set when a collection is created; change them on the cluster, or use another collection name"
            )

    def _create(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        try:
            self._call(f"create collection {name!r}", partial(self._engine.create, name, schema, options))
        except StoreError:
            # Another job (or thread) may have created it first; its schema is checked by the caller.
            if not self._call(f"look up collection {name!r}", partial(self._engine.exists, name)):
                raise

    def delete_collection(self, name: str) -> None:
        """Delete a collection whole: its points, indexes and recorded schema. The way to build it again
        with other settings (BM25, quantization, a model), which an existing collection keeps. In a store
        folder, one that ragkit cannot read (its schema.json lost) can be deleted too; on a server, only
        collections that ragkit made."""
        _check_name(name)
        if name not in self.collections():
            raise CollectionNotFoundError(self._not_found(name))
        delete = partial(self._engine.delete_collection, name)
        self._call(f"delete collection {name!r}", delete, collection=name)
        self._schemas.pop(name, None)

    def collection_info(self, name: str) -> CollectionInfo:
        """What a ragkit collection was built with (model, size, schema), and its exact point count."""
        schema = self.schema(name)
        return CollectionInfo(
            name=name, model=schema.model, dim=schema.dim, points=self.count(name), schema=schema
        )

    def schema(self, name: str) -> Schema:
        """The recorded schema of a ragkit collection; an error for one made by something else."""
        _check_name(name)
        schema = self._call(f"read collection {name!r}", partial(self._engine.schema, name), collection=name)
        self._schemas[name] = schema
        return schema

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
        The points are on disk when it returns or raises: an embedded engine syncs once, after the last
        batch, or after the last one written when `points` or a batch fails (that failure is what raises).
        """
        _check_name(name)
        if max_batch_bytes < 1 or max_batch_points < 1:
            raise InputError("max_batch_bytes and max_batch_points must be positive")
        schema = self._known_schema(name)
        written = 0
        sync = partial(
            self._call, f"sync {name!r} to disk", partial(self._engine.sync, name), collection=name
        )
        try:
            for batch in _batches(points, max_batch_bytes, max_batch_points, schema):
                write = partial(self._engine.upsert, name, batch)
                self._call(f"upsert {len(batch)} points into {name!r}", write, collection=name)
                log.debug("upserted a batch of %d points into %r", len(batch), name)
                written += len(batch)
        except BaseException:
            if written:
                with contextlib.suppress(StoreError):
                    sync()
            raise
        if written:
            sync()
        return written

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; ids that do not exist are ignored, so a retried delete is harmless."""
        _check_name(name)
        if isinstance(ids, str):
            raise InputError(f"ids must be a sequence of point ids, not the string {ids!r}: use [{ids!r}]")
        checked = [_check_id(i) for i in ids]
        for start in range(0, len(checked), _DELETE_CHUNK):
            delete = partial(self._engine.delete_ids, name, checked[start : start + _DELETE_CHUNK])
            self._call(f"delete points from {name!r}", delete, collection=name)

    def delete_where(self, name: str, filters: dict[str, Any]) -> None:
        """Delete every point matching `filters`, e.g. `{"doc_id": "abc"}` to drop one document."""
        _check_name(name)
        conditions = parse_filters(filters)
        if not conditions:
            raise InputError(
                "delete_where needs at least one filter condition; an empty one would delete all points"
            )
        delete = partial(self._engine.delete_where, name, conditions)
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
        _check_page_size(page_size)
        pages = self._pages(name, list(fields) or False, parse_filters(filters), page_size, False)
        return ((pid, payload) for pid, payload, _ in pages)

    def scroll_points(self, name: str, *, page_size: int = 256) -> Iterator[tuple[str, dict[str, Any], dict]]:
        """Yield `(id, payload, vectors)` of every point: the whole collection, for copying it elsewhere."""
        _check_name(name)
        _check_page_size(page_size)
        return self._pages(name, True, (), page_size, True)

    def _pages(
        self, name: str, fields: list[str] | bool, conditions: tuple, page_size: int, vectors: bool
    ) -> Iterator[tuple[str, dict[str, Any], Any]]:
        offset = None
        while True:
            page = partial(self._engine.scroll, name, fields, conditions, page_size, offset, vectors)
            records, offset = self._call(f"scroll {name!r}", page, collection=name)
            yield from records
            if offset is None:
                return

    def count(self, name: str, filters: dict[str, Any] | None = None) -> int:
        """Exact number of points matching `filters` (all points without)."""
        _check_name(name)
        count = partial(self._engine.count, name, parse_filters(filters))
        return self._call(f"count points in {name!r}", count, collection=name)

    def search(
        self,
        name: str,
        vector: np.ndarray | Sequence[float] | None,
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: SearchMode = "dense",
        text: str | None = None,
        fusion: Fusion = "rrf",
        exact: bool = False,
    ) -> list[Hit]:
        """The `top_k` best points for a query, best first, with their payloads.

        `mode="dense"` ranks by cosine similarity to `vector`; `"sparse"` by BM25 of `text` (IDF from the
        collection as it is now); `"hybrid"` asks the engine for both candidate lists, filtered alike, and
        fuses them there by rank (RRF, or `fusion="dbsf"`). `score_threshold` applies to the score of the
        mode: a cosine, a BM25 score, or a fused score (RRF: the sum of 1/(10 + rank) over both lists, ranks
        from 0, so at most 0.2). `exact` skips the vector index (for measuring its recall). Equal scores
        are ordered by point id, so the same search always gives the same hits.
        """
        _check_name(name)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InputError(f"top_k must be an int from 1 to {MAX_TOP_K} (2**62 - 1), got {top_k!r}")
        check_mode(mode)
        check_fusion(fusion)
        if score_threshold is not None:
            score_threshold = _threshold(score_threshold)
        schema = self._known_schema(name)
        dense = sparse = None
        if needs_vector(mode):
            if vector is None:
                raise InputError(f"a {mode} search needs the query's vector")
            dense = _vector(vector, "the query vector", schema)
        if mode in ("sparse", "hybrid"):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"a {mode} search needs the query's text")
            _check_text(text, f"the query text {text[:80]!r}")
            sparse = bm25.query_vector(schema.bm25, text)
        request = Query(
            mode=mode,
            dense=dense,
            sparse=sparse,
            limit=top_k,
            conditions=parse_filters(filters),
            score_threshold=score_threshold,
            fusion=fusion,
            candidates=max(HYBRID_CANDIDATES * top_k, HYBRID_MIN_CANDIDATES),
            exact=exact,
            quantized=schema.quantize is not None,
        )
        return self._ranked(name, request)

    def _ranked(self, name: str, request: Query) -> list[Hit]:
        """The engine's best `request.limit` hits, ties ordered by point id.

        Engines order equal scores arbitrarily, and ties are common in hybrid mode: an RRF score is a sum
        of two rank terms, so points at ranks (1, 2) and (2, 1) tie. Qdrant Edge returned such ties in
        either order from one call to the next, and so different hits at the cut. The hits past the cut
        show whether a tie crosses it; while one does, twice as many are fetched (up to
        TIE_FETCH_LIMIT), so that every point tied at the cut is there to be ordered by id.
        """
        top_k = request.limit
        limit = top_k + TIE_MARGIN
        while True:
            query = partial(self._engine.query, name, replace(request, limit=limit))
            hits = self._call(f"search {name!r}", query, collection=name)
            if len(hits) < limit or hits[-1].score < hits[top_k - 1].score or limit >= TIE_FETCH_LIMIT:
                return sorted(hits, key=lambda hit: (-hit.score, hit.id))[:top_k]
            limit = min(2 * limit, TIE_FETCH_LIMIT)

    def unindexed(self, name: str) -> int:
        """Points written since the collection's last index build, which searches scan exactly until the
        next one, and points deleted since, which the index holds until then; kept with the collection, so
        it holds across restarts. 0 on a server, which indexes in the background by itself."""
        _check_name(name)
        return self._call(
            f"count the unindexed points of {name!r}", partial(self._engine.unindexed, name), collection=name
        )

    def build_index(self, name: str) -> float:
        """Index what was written, and leave out what was deleted, since the last build; returns the
        seconds it took.

        On a folder the build runs in a child process on a copy of the collection's shard, which is then
        swapped in: searches go on meanwhile, writes wait, and the disk holds the copy until the swap. With
        nothing written or deleted since the last build (`unindexed`), it returns at once. A server
        indexes in the background by itself.
        """
        _check_name(name)
        log.info("building the index of %r in %s", name, self._where)
        started = time.perf_counter()
        self._call(f"build the index of {name!r}", partial(self._engine.build_index, name), collection=name)
        return time.perf_counter() - started

    def _known_schema(self, name: str) -> Schema:
        return self._schemas.get(name) or self.schema(name)

    def _call(self, what: str, call: Callable[[], T], *, collection: str | None = None) -> T:
        """Run one engine call: retried with exponential backoff when the failure is transient, and any
        engine exception translated into a StoreError that says what was being done, where, and why."""
        if self._closed:
            raise StoreError(f"cannot {what}: the store ({self._where}) is closed")
        attempt = 0
        while True:
            try:
                with self._engine.serial:
                    return call()
            except Exception as exc:
                if not self._engine.is_transient(exc):
                    raise self._translate(what, exc, collection) from exc
                if attempt == self._retries:
                    raise StoreError(
                        f"cannot {what}: {self._where} failed {attempt + 1} times, last with "
                        f"{self._engine.describe(exc)}. Check that the server is running and reachable "
                        "at that address"
                    ) from exc
                delay = max(self._backoff * 2**attempt, getattr(exc, "retry_after_s", 0))
                log.warning(
                    "%s: %s from %s; retrying in %.2fs", what, self._engine.describe(exc), self._where, delay
                )
                time.sleep(delay)
                attempt += 1

    def _translate(self, what: str, exc: Exception, collection: str | None) -> Exception:
        # Engines word "no such collection" differently; asking is the one check that holds for every one.
        # Listed, not `exists`: a collection that is there but unreadable is not "not found".
        if collection is not None:
            try:
                with self._engine.serial:
                    missing = collection not in self._engine.collections()
            except Exception:
                missing = False
            if missing:
                self._schemas.pop(collection, None)
                return CollectionNotFoundError(self._not_found(collection))
        if isinstance(exc, RagkitError):
            return exc
        return StoreError(f"cannot {what} in {self._where}: {self._engine.describe(exc)}")

    def _not_found(self, name: str) -> str:
        try:
            existing = ", ".join(self.collections()) or "none"
        except StoreError:
            existing = "unknown"
        return f"collection {name!r} not found in {self._where} (existing collections: {existing})"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.strip("."):
        raise InputError(
            f"collection name {name!r} is invalid: use 1 to 255 characters from A-Z a-z 0-9 _ . - "
            "(and not only dots)"
        )


def _check_page_size(page_size: int) -> None:
    # A page of 0 points never reaches the end: Edge answers it with no points and a next offset.
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InputError(
            f"page_size must be a positive int, got {page_size!r}: from 1 to {MAX_PAGE_SIZE} (2**64 - 1)"
        )


def _check_id(point_id: str) -> str:
    if type(point_id) is str and _CANONICAL_ID.fullmatch(point_id):
        return point_id  # already what str(uuid.UUID(...)) would make of it
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise InputError(
            f"point id {point_id!r} is not a UUID; make ids with ragkit.store.point_id()"
        ) from None


def _vector(vector: np.ndarray | Sequence[float], what: str, schema: Schema | None) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"{what} must be a non-empty 1-D vector, got shape {array.shape}")
    if schema is not None and array.size != schema.dim:
        raise InputError(
            f"{what} has {array.size} dimensions, but the collection holds {schema.dim}-dimensional vectors "
            f"of model {schema.model!r}"
        )
    if not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN or infinity (an encoder overflow?)")
    return array.tolist()


def _json_payload(payload: Any, point: str) -> dict[str, Any]:
    """The payload as plain JSON values, which both engines store alike; anything else is refused, naming
    the point and the key.

    The engines disagree on the rest, each silently or cryptically: an integer past 64 bits became a
    rounded float on Edge; bytes a list of numbers on Edge and a string on a server; a set, a date or a
    non-string key was kept (converted) by qdrant-client and refused by Edge as "failed to extract enum
    Helper"; NaN refused by Edge and not by qdrant-client; NumPy scalars the reverse. NumPy scalars and
    arrays and tuples are converted here, which loses nothing.
    """
    if not isinstance(payload, dict):
        raise InputError(f"point {point!r}: the payload must be a dict, got {type(payload).__name__}")
    try:
        return _plain(payload)
    except _Refused as refused:
        where = "payload" + "".join(reversed(refused.path))
        raise InputError(f"point {point!r}: {where} {refused.reason}") from None


class _Refused(Exception):
    """A payload value JSON cannot hold. The path to it is added on the way out, so that the common case,
    a payload that is fine, builds no path strings (they were most of the check's cost)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []


def _plain(value: Any) -> Any:
    """`value` as plain JSON. The exact built-in types are tested first: every payload ragkit writes has
    only those, and each point is checked on every write."""
    kind = type(value)
    if kind is str:
        if not value.isascii() and (surrogate := _surrogate(value)):
            raise _Refused(surrogate)
        return value
    if kind is int:
        if not PAYLOAD_INT_MIN <= value <= PAYLOAD_INT_MAX:
            raise _Refused(
                f"is the integer {value}, outside the 64 bits payload integers have "
                f"({PAYLOAD_INT_MIN} to {PAYLOAD_INT_MAX}); store it as a string"
            )
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Refused(f"is {value}, which JSON cannot hold; use null or a string")
        return value
    if kind is dict:
        plain = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _Refused(f"has the key {key!r}; payload keys must be strings")
            try:
                plain[key] = item if type(item) is str and item.isascii() else _plain(item)  # most values
            except _Refused as refused:
                refused.path.append(f"[{key!r}]")
                raise
        return plain
    if kind is list or kind is tuple:
        items = []
        for i, item in enumerate(value):
            try:
                items.append(item if type(item) is str and item.isascii() else _plain(item))
            except _Refused as refused:
                refused.path.append(f"[{i}]")
                raise
        return items
    if value is None or kind is bool:
        return value
    # NumPy values, and subclasses of the built-in types, as the built-in value they hold.
    if isinstance(value, np.generic | np.ndarray):
        return _plain(value.tolist())
    for base in (str, int, float, dict, list, tuple):
        if isinstance(value, base):
            return _plain(base(value))
    raise _Refused(
        f"is a {type(value).__name__} ({value!r:.80}); payload values must be JSON: "
        "null, bool, int, float, str, or lists and dicts of them"
    )


def _check_text(text: str, what: str) -> None:
    """Refuse a string holding a lone surrogate (what JSON's "\\ud800" decodes to): UTF-8 cannot encode
    it, so BM25 and both engines would fail on it with a bare UnicodeEncodeError."""
    if surrogate := _surrogate(text):
        raise InputError(f"{what} {surrogate}")


def _surrogate(text: str) -> str | None:
    """What is wrong with `text` if it holds a lone surrogate, else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a lone surrogate U+{ord(text[exc.start]):04X} at position {exc.start}, which is not text "
            "(UTF-8 cannot encode it)"
        )
    return None


def _threshold(value: Any) -> float:
    """A score threshold as a float. NaN compares false with every score, and the engines read that
    differently: Edge returned no hits, qdrant-client every hit."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"score_threshold must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"score_threshold must be a finite number, got {value!r}")
    return float(value)


def _settings(values: Mapping[str, int | None]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items()))


def _batches(
    points: Iterable[Point], max_bytes: int, max_points: int, schema: Schema
) -> Iterator[list[StoredPoint]]:
    """Group points so each request stays under `max_bytes` of JSON (estimated) and `max_points` points.

    A single point over the byte cap still goes, alone: it cannot be split, and the server has the last word.
    """
    batch: list[StoredPoint] = []
    size = 0
    for point in points:
        dense = _vector(point.vector, f"the vector of point {point.id!r}", schema)
        payload = _json_payload(point.payload, point.id)
        text = point.text if point.text is not None else payload.get("text")
        if not isinstance(text, str):
            raise InputError(
                f"point {point.id!r} has no text for its BM25 vector: give Point(text=...) or a payload 'text'"
            )
        if point.text is not None:  # a payload's text was checked with the payload
            _check_text(text, f"point {point.id!r}: the text of its BM25 vector")
        sparse = bm25.document_vector(schema.bm25, text)
        payload_bytes = len(json.dumps(payload))
        estimate = payload_bytes + _BYTES_PER_FLOAT * len(dense) + _BYTES_PER_TERM * len(sparse.indices) + 100
        if batch and (size + estimate > max_bytes or len(batch) >= max_points):
            yield batch
            batch, size = [], 0
        batch.append(StoredPoint(_check_id(point.id), dense, sparse, payload, payload_bytes))
        size += estimate
    if batch:
        yield batch
