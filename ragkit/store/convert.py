"""`ragkit store convert DIR`: a store folder written by ragkit before schema 2 (qdrant-client's local
mode) becomes an Edge store, point for point.

Every point keeps its id, dense vector and payload; nothing is re-embedded. Each point gains the BM25
vector of the text that was embedded, rebuilt from its payload by `embedded_text`. The new store is
written beside the old one and swapped in only when every collection's count matches, and the old
folder stays as a backup, so a failed or interrupted conversion leaves the original as it was; one
stopped between the two renames of the swap is finished by running it again.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import InputError, StoreError, StoreLockedError
from ragkit.store import schema as names
from ragkit.store.legacy import is_legacy_folder
from ragkit.store.rebuild import sync_dir
from ragkit.store.store import Store
from ragkit.store.types import Point

log = logging.getLogger(__name__)

LEGACY_SCHEMA = 1
BACKUP_SUFFIX = ".qdrant-local-backup"
WORK_SUFFIX = ".converting"


@dataclass
class Conversion:
    """What a conversion did: points copied per collection, and where the old folder went."""

    folder: Path
    backup: Path
    collections: dict[str, int] = field(default_factory=dict)
    index_seconds: float = 0.0

    def summary(self) -> str:
        copied = ", ".join(f"{name}: {count} points" for name, count in self.collections.items()) or "none"
        return (
            f"converted {self.folder} to the Qdrant Edge layout ({copied}; index built in "
            f"{self.index_seconds:.1f}s); the old folder is kept at {self.backup}"
        )


def convert_legacy(folder: Path, *, embedded_text: Callable[[dict[str, Any]], str]) -> Conversion:
    """Convert `folder` in place; `embedded_text(payload)` gives the text whose BM25 vector a point gets."""
    from qdrant_client import QdrantClient

    folder = folder.expanduser().resolve()
    backup = folder.with_name(folder.name + BACKUP_SUFFIX)
    work = folder.with_name(folder.name + WORK_SUFFIX)
    if not folder.exists() and backup.exists() and work.exists():
        # Stopped between its two renames: the copy was complete (the old folder moves only then).
        work.rename(folder)
        sync_dir(folder.parent)
        return _counted(Conversion(folder=folder, backup=backup))
    if not is_legacy_folder(folder):
        raise InputError(f"{folder} is not a store folder of an earlier ragkit (no meta.json + collection/)")
    if backup.exists():
        raise InputError(f"{backup} exists already: move it away, then convert again")
    try:
        old = QdrantClient(path=str(folder))
    except RuntimeError as exc:
        raise StoreLockedError(
            f"the store {folder} is in use by another process (a conversion of it, or a program of an "
            "earlier ragkit): stop it, then convert"
        ) from exc
    result = Conversion(folder=folder, backup=backup)
    try:
        # Only with the old folder held: the work folder may be another conversion's, still being written.
        shutil.rmtree(work, ignore_errors=True)  # an earlier, interrupted conversion
        new = Store.open(path=work)
        try:
            with new:
                for collection in sorted(c.name for c in old.get_collections().collections):
                    result.collections[collection] = _copy(old, new, collection, embedded_text)
                for collection in result.collections:
                    result.index_seconds += new.build_index(collection)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # a partial copy; the old folder is as it was
            raise
    finally:
        old.close()
    folder.rename(backup)
    work.rename(folder)
    sync_dir(folder.parent)  # both renames on disk before the conversion is reported done
    return result


def _counted(result: Conversion) -> Conversion:
    with Store.open(path=result.folder) as store:
        result.collections = {name: store.count(name) for name in store.collections()}
    return result


def _copy(old: Any, new: Store, name: str, embedded_text: Callable[[dict[str, Any]], str]) -> int:
    config = old.get_collection(name).config
    meta = config.metadata or {}
    vectors = config.params.vectors
    if (
        meta.get("ragkit_schema") != LEGACY_SCHEMA
        or not isinstance(meta.get("model"), str)
        or not isinstance(vectors, dict)
        or names.DENSE not in vectors
    ):
        raise StoreError(
            f"collection {name!r} was not written by ragkit schema {LEGACY_SCHEMA} (metadata {meta!r}): "
            "nothing was converted"
        )
    new.ensure_collection(name, dim=vectors[names.DENSE].size, model=meta["model"])
    written = new.upsert(name, _points(old, name, embedded_text))
    expected = old.count(name, exact=True).count
    if written != expected or new.count(name) != expected:
        raise StoreError(
            f"collection {name!r}: copied {written} of {expected} points; nothing was swapped in"
        )
    log.info("collection %r: %d points copied", name, written)
    return written


def _points(old: Any, name: str, embedded_text: Callable[[dict[str, Any]], str]) -> Iterator[Point]:
    offset = None
    while True:
        records, offset = old.scroll(name, limit=256, offset=offset, with_payload=True, with_vectors=True)
        for record in records:
            payload = record.payload or {}
            yield Point(str(record.id), record.vector[names.DENSE], payload, text=embedded_text(payload))
        if offset is None:
            return
