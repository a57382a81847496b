"""What an engine does for the Store facade: qdrant-client's split of `QdrantBase` over a local and a remote
engine, in ragkit's terms.

An engine takes checked input (valid names, ids, vectors, parsed conditions) and returns plain values;
validation, batching, retries and error wording stay in the facade, so they are written once.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from ragkit.store.filters import Condition
from ragkit.store.schema import CollectionOptions, Schema
from ragkit.store.types import Hit, Query, StoredPoint


class Engine(ABC):
    """One Qdrant engine. `where` names it in messages ("the local store /data", "the Qdrant server at …").

    `serial` is entered around every call: an engine that is not safe for threads sets a lock there.
    `embedded`: every collection is one shard on this machine, so cluster settings do not apply.
    """

    where: str
    embedded: bool = False
    serial: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()

    @abstractmethod
    def collections(self) -> list[str]:
        """Every collection there, sorted, including those ragkit cannot read (`schema` says why)."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the name is taken, so that `create` is not called for it."""

    @abstractmethod
    def create(self, name: str, schema: Schema, options: CollectionOptions) -> None:
        """Create the collection with both vectors, its recorded schema and its payload indexes."""

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Delete an existing collection whole (points, indexes, recorded schema); a retry after it went
        is harmless."""

    @abstractmethod
    def cluster(self, name: str) -> dict[str, int | None]:
        """The collection's `shards`, `replicas` and `write_consistency` (None where the engine does not say);
        empty on an embedded engine."""

    @abstractmethod
    def schema(self, name: str) -> Schema:
        """The recorded schema; `SchemaError` for a collection that ragkit did not make or an older one."""

    @abstractmethod
    def add_indexes(self, name: str, indexes: Mapping[str, str]) -> None:
        """Index payload fields ({field: kind}; idempotent), all at once, and record them with the schema."""

    @abstractmethod
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        """Write the points; they may wait in a log until `sync`."""

    @abstractmethod
    def sync(self, name: str) -> None:
        """Put the writes made so far on disk, once after many batches, since doing so costs about as much
        as writing a batch. A server has done so before it acknowledged each request (`wait=True`)."""

    @abstractmethod
    def delete_ids(self, name: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def delete_where(self, name: str, conditions: Sequence[Condition]) -> None: ...

    @abstractmethod
    def scroll(
        self,
        name: str,
        fields: list[str] | bool,
        conditions: Sequence[Condition],
        limit: int,
        offset: Any,
        with_vectors: bool = False,
    ) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any] | None]], Any]:
        """One page of `(id, payload, vectors or None)` and the offset of the next page (None at the end)."""

    @abstractmethod
    def count(self, name: str, conditions: Sequence[Condition]) -> int: ...

    @abstractmethod
    def query(self, name: str, query: Query) -> list[Hit]: ...

    @abstractmethod
    def unindexed(self, name: str) -> int:
        """Points written or deleted since the last index build (0 where the engine indexes by itself)."""

    @abstractmethod
    def build_index(self, name: str) -> bool:
        """Index the points written, and leave out those deleted, since the last build; False when there
        was nothing to do."""

    def is_transient(self, exc: Exception) -> bool:
        """Whether a failure is worth retrying (the engine was unreachable or busy, not the request wrong)."""
        return False

    def describe(self, exc: BaseException) -> str:
        """One line for a person: the engine's own error text rather than a raw dump."""
        return f"{type(exc).__name__}: {exc}"

    @abstractmethod
    def close(self) -> None: ...
