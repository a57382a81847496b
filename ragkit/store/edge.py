"""The embedded engine: Qdrant Edge, Qdrant's own storage and search engine in this process.

A store folder holds one Edge shard per collection, with the schema the collection was built with
beside it:

    DIR/ragkit-store.json               marks the folder as a ragkit store (format version)
    DIR/.lock                           held by the process that has the store open
    DIR/collections/NAME/schema.json    model, dimension, schema version, BM25 settings, indexes
    DIR/collections/NAME/shard/         the Edge shard (segments, WAL, payload indexes)
    DIR/collections/NAME/unindexed.json points written or deleted since the last index build

A collection exists once its schema.json does. A new collection is made whole in DIR/.creating/NAME/
and then moved into collections/ by one rename, so a crash while creating leaves only a staging folder
that the next create clears; a deleted one leaves collections/ by one rename into DIR/.dropping/, which
is then removed (or, after a crash, when the folder is next opened). A collection folder without schema.json (lost, or removed by hand) is
never cleared while its shard holds points. Writes go through Edge's WAL: a process killed mid-write
comes back at a whole-batch boundary.

Threads: searches run together (Edge releases the GIL for them, and a shard serves concurrent reads);
writes and index builds are serialised. Edge's `optimize` holds the GIL while it runs, and so does adding
a payload index to a shard that holds points, so `build_index` and `add_indexes` run them in a child
process on a copy of the shard and swap the copy in between two searches (see `rebuild`): searches go on
meanwhile, and so does the first read of a collection not yet loaded (loading has its own lock, which a
build holds only for its swap); writes wait. Until a build, new points sit in
segments that are searched exactly, and deleted ones stay in the index until it is rebuilt without them.
Their count is kept beside the shard, so that whoever decides when to build (an ingestion job, the
service) sees it across restarts, and a build with nothing to do copies nothing.

Disk space: Edge keeps its WAL, vectors and payload indexes in memory-mapped files that it creates
sparse (a 32 MiB WAL segment, a 32 MiB vector chunk) and fills later, some when a shard is loaded. On a
full disk, filling them does not fail with an error: the kernel kills the process (SIGBUS). So before a
shard is loaded and before every write that adds data, the free space of the folder's file system must
cover what its sparse files may still fill, and for a write also what it adds and FREE_SPACE_RESERVE
for the files that writes create; otherwise the call fails with "no space left on device". Deletions are not
checked, so that a job can remove what it wrote part way.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import portalocker
import qdrant_edge as edge

from ragkit.errors import InputError, StoreError, StoreLockedError
from ragkit.store import rebuild
from ragkit.store import schema as names
from ragkit.store.base import Engine
from ragkit.store.bm25 import SparseVector, plain_vectors
from ragkit.store.filters import AnyOf, Between, Condition, Equals
from ragkit.store.legacy import is_legacy_folder, legacy_message
from ragkit.store.schema import CollectionOptions, Schema, SchemaError
from ragkit.store.types import Hit, Query, StoredPoint

log = logging.getLogger(__name__)

MARKER = "ragkit-store.json"
FORMAT = {"format": "ragkit-store", "engine": "qdrant-edge", "version": 1}
LOCK = ".lock"
COLLECTIONS = "collections"
CREATING = ".creating"  # DIR/.creating/NAME: a collection being made, before it is moved into collections/
DROPPING = ".dropping"  # DIR/.dropping/NAME: a deleted collection, moved out of collections/ to be removed
SCHEMA_FILE = "schema.json"
UNINDEXED_FILE = "unindexed.json"
SHARD = rebuild.SHARD
# How long a shard's WAL may stay held by a process that has handed the folder back.
WAL_RELEASE_WAIT_S = 30.0
# Qdrant's default: segments under this many KB of vectors are searched exactly, not through HNSW.
FULL_SCAN_THRESHOLD_KB = 10_000
# Free space kept for files that writes create (a new WAL segment or vector chunk, 32 MiB each, and
# payload index pages), and what a write is estimated to add: its points' bytes twice (WAL record +
# segment), an index build twice what the segments fill (the new segment and its graph, before the old
# one is removed: 2x measured on 8000 points). Measured with qdrant-edge-py 0.9 on tmpfs.
FREE_SPACE_RESERVE = 64 * 2**20
UPSERT_SPACE_FACTOR = 2
NEW_COLLECTION_BYTES = 8 * 2**20  # an empty shard fills 5.2 MiB of its files
INDEX_SPACE_FACTOR = 2

# Folders this process holds, and its pid then: a lock refused on one of them was refused to this
# process, whose forked children inherit the map but not the hold.
_HELD: dict[Path, int] = {}

INDEX_TYPES = {
    "keyword": edge.PayloadSchemaType.Keyword,
    "integer": edge.PayloadSchemaType.Integer,
    "float": edge.PayloadSchemaType.Float,
    "tenant": edge.KeywordIndexParams(is_tenant=True),
}


class EdgeEngine(Engine):
    """The collections of one store folder, each an Edge shard opened on first use."""

    embedded = True

    def __init__(self, folder: Path) -> None:
        self.where = f"the local store {folder}"
        self._folder = folder
        self._lock_file = _lock(folder)
        try:
            _mark(folder)
            shutil.rmtree(folder / DROPPING, ignore_errors=True)  # what a delete cut short left
        except Exception:
            _unlock(folder, self._lock_file)
            raise
        self._shards: dict[str, edge.EdgeShard] = {}
        self._schemas: dict[str, Schema] = {}
        self._unindexed: dict[str, int] = {}  # UNINDEXED_FILE's counts, read once per collection
        self._write = threading.RLock()  # writes and builds; taken before _loading, never after it
        self._loading = threading.Lock()  # shards coming into self._shards, or swapped in a build
        self._gate = _Gate()
        self._closed = False  # set under _loading, so no shard is loaded once the folder is handed back

    def collections(self) -> list[str]:
        root = self._folder / COLLECTIONS
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir())

    def exists(self, name: str) -> bool:
        # A folder without its schema is not: `create` clears it if its shard is empty, else refuses.
        return (self._dir(name) / SCHEMA_FILE).is_file()

    def create(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        with self._write:
            if self.exists(name):
                return
            self._refuse_case_clash(name)
            self._ensure_space(f"create collection {name!r}", NEW_COLLECTION_BYTES)
            target = self._dir(name)
            if target.exists():
                self._clear_schemaless(name, target)
            staging = self._folder / CREATING / name
            shutil.rmtree(staging, ignore_errors=True)  # the leftovers of a create that crashed
            staging.mkdir(parents=True)
            shard = edge.EdgeShard.create(str(staging / SHARD), _config(schema))
            try:
                for key, kind in schema.indexes.items():
                    shard.update(edge.UpdateOperation.create_field_index(key, INDEX_TYPES[kind]))
                shard.flush()
            finally:
                shard.close()  # it is loaded again from its final place on first use
            _write_json(staging / UNINDEXED_FILE, {"points": 0})
            _write_json(staging / SCHEMA_FILE, schema.to_json())
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True)
                rebuild.sync_dir(self._folder)
            staging.rename(target)
            rebuild.sync_dir(target.parent)  # so the collection outlives a power loss once created
            self._unindexed[name] = 0
            self._schemas[name] = schema

    def delete_collection(self, name: str) -> None:
        with self._write:
            target = self._dir(name)
            if not target.is_dir():
                return
            trash = self._folder / DROPPING / name
            shutil.rmtree(trash, ignore_errors=True)
            trash.parent.mkdir(exist_ok=True)
            # Out of collections/ between two searches, by one rename: a crash leaves it whole or gone.
            with self._gate.swap(), self._loading:
                shard = self._shards.pop(name, None)
                if shard is not None:
                    shard.close()
                target.rename(trash)
                rebuild.sync_dir(target.parent)
                self._schemas.pop(name, None)
                self._unindexed.pop(name, None)
            shutil.rmtree(trash.parent)

    def _refuse_case_clash(self, name: str) -> None:
        """Refuse a name that differs from an existing collection's only in case.

        On a case-insensitive file system (macOS, Windows, a Docker Desktop volume) both names are one
        folder: the new collection would be created over the existing one's shard. Refused everywhere, so
        that a store folder means the same wherever it is copied or mounted.
        """
        root = self._folder / COLLECTIONS
        existing = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        clash = [other for other in existing if other != name and other.casefold() == name.casefold()]
        if clash:
            raise InputError(
                f"collection name {name!r} differs from the existing collection {clash[0]!r} of {self.where} "
                "only in case; on a case-insensitive file system (macOS, Windows, Docker Desktop volumes) "
                "both are one folder, so an embedded store refuses it: use another name"
            )

    def _clear_schemaless(self, name: str, folder: Path) -> None:
        """Remove a collection folder that has no schema.json, but only when its shard holds no points.

        Such a folder is what a create that crashed left before creates were staged, or a collection
        whose schema.json was lost or removed by hand. Clearing the second would delete every point of
        the collection without a word, so it is refused, saying how to get the points back.
        """
        rebuild.settle(folder)  # a build cut short leaves shard.next/ or shard.old/ beside it
        points = 0
        if (folder / SHARD).exists():
            try:
                shard = _load(folder / SHARD)
            except Exception as exc:
                raise SchemaError(
                    f"collection {name!r} in {self.where}: {folder} has no {SCHEMA_FILE} and its shard "
                    f"does not load ({self.describe(exc)}); remove {folder} to create the collection anew"
                ) from exc
            try:
                points = shard.count(edge.CountRequest(exact=True))
            finally:
                shard.close()
        if points:
            raise SchemaError(
                f"collection {name!r} in {self.where}: {folder} holds a shard of {points} points but no "
                f"{SCHEMA_FILE} (lost, or removed by hand), so it was left as it is: put {SCHEMA_FILE} back "
                f"(from a backup) to use those points, or remove {folder} to create the collection anew"
            )
        shutil.rmtree(folder)

    def cluster(self, name: str) -> dict[str, int | None]:
        return {}

    def schema(self, name: str) -> Schema:
        if name not in self._schemas:
            path = self._dir(name) / SCHEMA_FILE
            if not path.exists() and path.parent.is_dir():
                raise SchemaError(
                    f"collection {name!r} in {self.where}: {path.parent} has no {SCHEMA_FILE} (lost, or "
                    f"removed by hand), so its points cannot be read: put {SCHEMA_FILE} back (from a "
                    f"backup), or remove {path.parent} to create the collection anew"
                )
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SchemaError(f"cannot read the schema of collection {name!r} ({path}): {exc}") from exc
            self._schemas[name] = Schema.from_json(raw, f"collection {name!r} in {self.where} ({path})")
        return self._schemas[name]

    def add_indexes(self, name: str, indexes: Mapping[str, str]) -> None:
        with self._write:
            current = self.schema(name)
            missing = {field: kind for field, kind in indexes.items() if current.indexes.get(field) != kind}
            if not missing:
                return
            what = f"index field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} of {name!r}"
            if self._shard(name).count(edge.CountRequest(exact=True)) == 0:  # nothing to index: instant
                self._ensure_space(what, _disk_bytes(self._dir(name) / SHARD)[0])
                for field, kind in missing.items():
                    self._update(name, edge.UpdateOperation.create_field_index(field, INDEX_TYPES[kind]))
            else:
                # Indexing the points holds the GIL for as long as they take: in a child, on a copy, one
                # copy for all the fields (a copy is the size of the shard).
                self._rebuild(
                    name,
                    what,
                    lambda shard: _disk_bytes(shard)[0],
                    lambda copy: rebuild.index_copy(copy, missing),
                )
            # Recorded once the shard has them: a crash before leaves indexes that are not recorded, which
            # the next declaration adds again, never a recorded index that the shard lacks.
            updated = current
            for field, kind in missing.items():
                updated = updated.with_index(field, kind)
            _write_json(self._dir(name) / SCHEMA_FILE, updated.to_json())
            self._schemas[name] = updated

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        operation = edge.UpdateOperation.upsert_points(
            [
                edge.Point(p.id, {names.DENSE: p.dense, names.SPARSE: _sparse(p.sparse)}, p.payload)
                for p in points
            ]
        )
        needed = UPSERT_SPACE_FACTOR * sum(_point_bytes(p) for p in points)
        with self._write:
            self._ensure_space(f"write {len(points)} points into {name!r}", needed)
            self._count_unindexed(name, len(points))
            self._shard(name).update(operation)

    def sync(self, name: str) -> None:
        with self._write:
            self._shard(name).flush()

    def unindexed(self, name: str) -> int:
        with self._write:
            if name not in self._unindexed:
                path = self._dir(name) / UNINDEXED_FILE
                try:
                    self._unindexed[name] = int(json.loads(path.read_text(encoding="utf-8"))["points"])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    # A collection older than the count, or a damaged file: any point may be unindexed.
                    if not isinstance(exc, FileNotFoundError):
                        log.warning("%s is unreadable (%s): counting every point of %r", path, exc, name)
                    self._unindexed[name] = self.count(name, [])
            return self._unindexed[name]

    def _count_unindexed(self, name: str, more: int) -> None:
        """Add `more` to the count before the change it counts: a crash in between can only leave the
        count too high, which costs one needless build, never too low, which would skip a needed one."""
        self._reset_unindexed(name, self.unindexed(name) + more)

    def _reset_unindexed(self, name: str, points: int) -> None:
        _write_json(self._dir(name) / UNINDEXED_FILE, {"points": points})
        self._unindexed[name] = points

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        with self._write:
            self._count_unindexed(name, len(ids))  # ids that were not there make one build early, at worst
            self._update(name, edge.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, name: str, conditions: Sequence[Condition]) -> None:
        with self._write:
            deleted = self.count(name, conditions)
            if deleted:
                self._count_unindexed(name, deleted)
                self._update(name, edge.UpdateOperation.delete_points_by_filter(_filter(conditions)))

    def _update(self, name: str, operation: edge.UpdateOperation) -> None:
        """Apply a delete and flush it, so a write that returned is on disk, not only in the WAL.

        The WAL alone already outlives a killed process (an upsert followed by SIGKILL, unflushed, reloads
        whole); the flush writes the shard's pending changes to disk as well. It takes about 12 ms, as
        long as writing 500 points, so upserts flush once per call (`sync`), not once per batch."""
        shard = self._shard(name)
        shard.update(operation)
        shard.flush()

    def scroll(
        self,
        name: str,
        fields: list[str] | bool,
        conditions: Sequence[Condition],
        limit: int,
        offset: Any,
        with_vectors: bool = False,
    ) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any] | None]], Any]:
        request = edge.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=_filter(conditions) if conditions else None,
            with_payload=fields,
            with_vector=with_vectors,
        )
        with self._reading(name) as shard:
            records, next_offset = shard.scroll(request)
        return [
            (str(r.id), r.payload or {}, plain_vectors(r.vector) if with_vectors else None) for r in records
        ], next_offset

    def count(self, name: str, conditions: Sequence[Condition]) -> int:
        request = edge.CountRequest(exact=True, filter=_filter(conditions) if conditions else None)
        with self._reading(name) as shard:
            return shard.count(request)

    def query(self, name: str, query: Query) -> list[Hit]:
        condition = _filter(query.conditions) if query.conditions else None
        params = _params(query.exact, query.quantized)
        if query.mode == "hybrid":
            assert query.dense is not None and query.sparse is not None
            request = edge.QueryRequest(
                limit=query.limit,
                prefetches=[
                    edge.Prefetch(
                        limit=query.candidates,
                        query=edge.Query.Nearest(query.dense, using=names.DENSE),
                        filter=condition,
                        params=params,
                    ),
                    edge.Prefetch(
                        limit=query.candidates,
                        query=edge.Query.Nearest(_sparse(query.sparse), using=names.SPARSE),
                        filter=condition,
                    ),
                ],
                query=edge.Fusion.Rrf(k=names.RRF_K) if query.fusion == "rrf" else edge.Fusion.Dbsf(),
                score_threshold=query.score_threshold,
                with_payload=True,
            )
        else:
            vector: Any = query.dense if query.mode == "dense" else _sparse(query.sparse)
            using = names.DENSE if query.mode == "dense" else names.SPARSE
            request = edge.QueryRequest(
                limit=query.limit,
                query=edge.Query.Nearest(vector, using=using),
                filter=condition,
                score_threshold=query.score_threshold,
                params=params if query.mode == "dense" else None,
                with_payload=True,
            )
        with self._reading(name) as shard:
            found = shard.query(request)
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in found]

    def build_index(self, name: str) -> bool:
        with self._write:
            if self.unindexed(name) == 0:
                return False
            changed = self._rebuild(
                name,
                f"build the index of {name!r}",
                lambda shard: INDEX_SPACE_FACTOR * _disk_bytes(shard / "segments")[0],
                rebuild.optimize_copy,
            )
            # Writes waited since the copy, so every point is now where the build left it.
            self._reset_unindexed(name, 0)
            return changed

    def _rebuild(
        self, name: str, what: str, needed: Callable[[Path], int], change: Callable[[Path], bool]
    ) -> bool:
        """Have a child process change a copy of the collection's shard, and swap the copy in between two
        searches; True when `change` (given the copy's folder) says it changed the copy.

        Called with the write lock held, so writes wait from the flush on and the copy misses none.
        `needed(shard folder)`: the space the change fills, beyond the copy itself.
        """
        folder = self._dir(name)
        shard = self._shard(name)
        shard.flush()
        # The copy keeps the shard's sparse files sparse, and the child fills them when it loads it.
        copy, holes = _disk_bytes(folder / SHARD)
        self._ensure_space(what, copy + holes + needed(folder / SHARD))
        try:
            rebuild.copy_shard(folder / SHARD, folder / rebuild.NEXT)
            changed = change(folder / rebuild.NEXT)
            if changed:
                with self._gate.swap(), self._loading:
                    del self._shards[name]
                    shard.close()
                    rebuild.swap_in(folder)
                    self._shards[name] = _load(folder / SHARD)
            return changed
        finally:
            rebuild.settle(folder)  # removes the old shard, or an unused or failed copy

    def describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}".replace("Service runtime error: ", "")
        if getattr(exc, "errno", None) == errno.ENOSPC or "os error 28" in text:
            return f"no space left on device ({text})"
        return text

    def close(self) -> None:
        """Close every shard, even after one fails to, and only then hand the folder back."""
        with self._write, self._loading, contextlib.ExitStack() as closing:
            self._closed = True
            closing.callback(_unlock, self._folder, self._lock_file)
            closing.callback(self._shards.clear)
            for shard in self._shards.values():
                closing.callback(shard.close)

    def _ensure_space(self, what: str, needed: int, reserve: int = FREE_SPACE_RESERVE) -> None:
        """Refuse a step that could fill the disk, which under memory maps would kill the process."""
        free = shutil.disk_usage(self._folder).free
        required = space_needed(self._folder, reserve) + needed
        if free >= required:
            return
        raise StoreError(
            f"cannot {what} in {self.where}: no space left on device ({free / 2**20:.0f} MiB free; the "
            f"store needs {required / 2**20:.0f} MiB free for this, as "
            "Qdrant Edge fills memory-mapped files and a full disk would kill the process). Free space on "
            "that file system, or move the store, and run the job again"
        )

    def _dir(self, name: str) -> Path:
        return self._folder / COLLECTIONS / name

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[edge.EdgeShard]:
        """The collection's shard for one read, which an index build's swap cannot close meanwhile.

        Loaded before passing the gate: loading takes the lock that a build's swap holds while it waits
        for the reads inside the gate to end.
        """
        self._shard(name)
        with self._gate.search():
            shard = self._shards.get(name)
            if shard is None:  # a swap failed after taking the old shard out; the next read reloads it
                raise StoreError(f"collection {name!r} was being swapped after its index build: try again")
            yield shard

    def _shard(self, name: str) -> edge.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            # Not under the write lock: a build of another collection holds that for all its minutes.
            with self._loading:
                if self._closed:
                    # A call that passed the Store's check as another thread closed it: loading now would
                    # hold the shard without the folder's lock, which another process may have taken.
                    raise StoreError(f"{self.where} was closed meanwhile")
                shard = self._shards.get(name)
                if shard is None:
                    self.schema(name)  # a folder without its schema is not a collection
                    # Loading fills sparse files but creates none, so it needs no reserve: a store that
                    # refused a write for want of space still opens.
                    self._ensure_space(f"load collection {name!r}", 0, reserve=0)
                    rebuild.settle(self._dir(name))  # after a crash during an index build
                    shard = _load(self._dir(name) / SHARD)
                    self._shards[name] = shard
        return shard


class _Gate:
    """Searches pass together; swapping a rebuilt shard in waits until none is inside, and holds new ones
    back until it is done (the time it takes to load the new shard)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._inside = 0
        self._swapping = False

    @contextlib.contextmanager
    def search(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._swapping)
            self._inside += 1
        try:
            yield
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def swap(self) -> Iterator[None]:
        with self._changed:
            self._swapping = True
            self._changed.wait_for(lambda: self._inside == 0)
        try:
            yield
        finally:
            with self._changed:
                self._swapping = False
                self._changed.notify_all()


def _load(path: Path) -> edge.EdgeShard:
    """Load a shard whose WAL may still be held for a moment by the process that had the folder before:
    a process that exits (a job's writer handing the folder back) releases the folder lock before its
    shards are dropped. With the folder lock held here, nobody else can be starting on it."""
    deadline = time.monotonic() + WAL_RELEASE_WAIT_S
    while True:
        try:
            return edge.EdgeShard.load(str(path))
        except Exception as exc:
            if "WouldBlock" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise StoreLockedError(
                    f"the shard {path} is still held by another process after {WAL_RELEASE_WAIT_S:.0f}s; "
                    "stop that process and try again"
                ) from exc
            time.sleep(0.05)


def space_needed(folder: Path, reserve: int = FREE_SPACE_RESERVE) -> int:
    """Free space a store folder needs before it loads or writes anything: what its sparse files may
    still fill, plus `reserve` for the files that writes create."""
    return _disk_bytes(folder)[1] + reserve


def _point_bytes(point: StoredPoint) -> int:
    """Bytes a point takes on disk, over-estimated: float32 vector, sparse terms, payload as JSON."""
    return 4 * len(point.dense) + 8 * len(point.sparse.indices) + point.payload_bytes


def _disk_bytes(folder: Path) -> tuple[int, int]:
    """Bytes the files under a folder fill on disk, and bytes they may still fill: the holes of sparse
    (memory-mapped) files, whose length overstates what they take until they are written."""
    filled = unfilled = 0
    for root, _, files in os.walk(folder):
        for file in files:
            try:
                info = os.stat(os.path.join(root, file))
            except FileNotFoundError:  # an optimisation removed it meanwhile
                continue
            filled += info.st_blocks * 512
            unfilled += max(0, info.st_size - info.st_blocks * 512)
    return filled, unfilled


def _lock(folder: Path) -> portalocker.Lock:
    """Hold the folder for this process: Edge's WAL allows one writer, and two processes would diverge."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # mkdir's own words, "File exists", read as if the folder were there
        raise StoreError(f"the local store path {folder} is a file, not a folder") from exc
    except OSError as exc:
        raise StoreError(f"cannot create the local store folder {folder}: {exc.strerror or exc}") from exc
    if not (folder / MARKER).exists() and is_legacy_folder(folder):
        raise StoreError(legacy_message(folder))
    lock = portalocker.Lock(str(folder / LOCK), mode="a", timeout=0, fail_when_locked=True)
    try:
        lock.acquire()
    except portalocker.exceptions.LockException:
        if _HELD.get(folder.resolve()) == os.getpid():
            raise StoreLockedError(
                f"the local store {folder} is already open in this process, by another Store: use that "
                "one (a Store may be shared between threads), or close it before opening the folder again"
            ) from None
        raise StoreLockedError(
            f"the local store {folder} is in use by another ragkit process (for example a running "
            "`ragkit serve`), and an embedded store can only be opened by one process at a time. "
            "Stop that process, or run a Qdrant server and give every process its address with --url "
            "(a `ragkit serve` holding it builds a collection's index on POST /v1/index)"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot lock the local store {folder}: {exc.strerror or exc}") from exc
    _HELD[folder.resolve()] = os.getpid()
    return lock


def _unlock(folder: Path, lock: portalocker.Lock) -> None:
    _HELD.pop(folder.resolve(), None)
    lock.release()


def _mark(folder: Path) -> None:
    marker = folder / MARKER
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{marker} is unreadable ({exc}); is {folder} a ragkit store?") from exc
        version = recorded.get("version") if isinstance(recorded, dict) else None
        if version != FORMAT["version"]:
            raise StoreError(
                f"{folder} is a ragkit store of format {version!r} ({marker}); this ragkit reads format "
                f"{FORMAT['version']}: use a matching ragkit version"
            )
        return
    _write_json(marker, FORMAT)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Write atomically: a reader (or a crash) sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(value, out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    rebuild.sync_dir(path.parent)  # the rename, else a power loss may bring the old file back


def _config(schema: Schema) -> edge.EdgeConfig:
    quantization = (
        edge.ScalarQuantizationConfig(type=edge.ScalarType.Int8, quantile=0.99, memory=edge.Memory.Pinned)
        if schema.quantize == "int8"
        else None
    )
    return edge.EdgeConfig(
        vectors={
            # Quantized: the int8 copy in RAM, the float32 originals on disk for rescoring (bench.sizing).
            names.DENSE: edge.EdgeVectorParams(
                size=schema.dim,
                distance=edge.Distance.Cosine,
                quantization_config=quantization,
                memory=edge.Memory.Cold if quantization is not None else None,
            )
        },
        # Payloads (the section texts, most of a point's bytes) are read only for the hits a search
        # returns, so they stay on disk, read on demand. Edge 0.9 does so by default too (bench.sizing: 16 B
        # of payload resident per point once opened); stated, so that a new default cannot change it.
        payload_memory=edge.Memory.Cold,
        sparse_vectors={names.SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        hnsw_config=edge.HnswIndexConfig(
            m=names.HNSW_M,
            ef_construct=names.HNSW_EF_CONSTRUCT,
            full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
        ),
    )


def _params(exact: bool, quantized: bool) -> edge.SearchParams:
    return edge.SearchParams(
        hnsw_ef=names.HNSW_EF,
        exact=exact,
        quantization=edge.QuantizationSearchParams(rescore=True, oversampling=names.QUANTIZED_OVERSAMPLING)
        if quantized
        else None,
    )


def _sparse(vector: SparseVector | None) -> edge.SparseVector:
    assert vector is not None
    return edge.SparseVector(list(vector.indices), list(vector.values))


def _filter(conditions: Sequence[Condition]) -> edge.Filter:
    return edge.Filter(must=[_condition(c) for c in conditions])


def _condition(condition: Condition) -> edge.FieldCondition:
    if isinstance(condition, Equals):
        # qdrant-edge-py 0.9 reads a Python bool as the integer 1 or 0, which never equals a stored bool;
        # numpy's bool is read as a bool.
        value = np.bool_(condition.value) if isinstance(condition.value, bool) else condition.value
        return edge.FieldCondition(key=condition.key, match=edge.MatchValue(value))
    if isinstance(condition, AnyOf):
        return edge.FieldCondition(key=condition.key, match=edge.MatchAny(list(condition.values)))
    assert isinstance(condition, Between)
    return edge.FieldCondition(key=condition.key, range=edge.RangeFloat(**condition.bounds))
