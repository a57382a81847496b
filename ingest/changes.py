"""Discovery and change detection against the collection, and pruning: the planning side of a job.

The collection is the source of truth: every point carries its document's hash and section count, so
reading a few small payload fields of every point tells which files are unchanged (never read again
beyond hashing), which are new or changed, and which documents lost their files. Both runners (one
machine, Ray) plan and prune with these functions, on the machine that started the job.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ingest.discover import discover, document_hash, document_id
from ingest.prepare import DocState, Job
from ingest.report import IngestReport
from ragkit.errors import InputError
from ragkit.store import CollectionOptions, Store, check_metadata

STATE_FIELDS = ["doc_id", "doc_hash", "section_count", "source"]


class ModelLike(Protocol):
    """What planning needs of a model: a loaded `Encoder` and `ModelFacts` both have it."""

    name: str
    dim: int
    max_length: int


@dataclass
class Plan:
    """What a job has to do, and what the collection held before it started."""

    jobs: list[Job]
    states: dict[str, DocState]
    present: set[str]  # ids of every supported file found, changed or not: what `prune` keeps
    unlisted: list[Path]  # folders whose contents are unknown: `prune` keeps every document under them
    max_tokens: int
    metadata: dict[str, Any]
    report: IngestReport


def plan(
    store: Store,
    collection: str,
    model: ModelLike,
    paths: list[Path],
    *,
    max_tokens: int | None,
    metadata: dict[str, Any] | None,
    options: CollectionOptions | None = None,
) -> Plan:
    """Create or check the collection (built with `options` if new), find the files under `paths`, and pick
    those that need work."""
    limit = _max_tokens(max_tokens, model.max_length)
    metadata = check_metadata(metadata or {})
    store.ensure_collection(collection, dim=model.dim, model=model.name, options=options)
    result = IngestReport(collection=collection, model=model.name)

    found = discover(paths)
    for path in found.missing:
        result.fail(path, "no such file or directory")
    for path, cause in found.failed:
        result.fail(path, cause)
    for path in found.unsupported:
        result.skip(path, f"unsupported file type {path.suffix or '(none)'!r}")
    for path, reason in found.skipped:
        result.skip(path, reason)
    counted = (found.files, found.unsupported, found.missing, found.failed, found.skipped)
    result.documents_seen = sum(map(len, counted))
    states = read_states(store, collection)
    jobs = []
    for path in found.files:
        doc_id = document_id(path)
        try:
            doc_hash = document_hash(path, max_tokens=limit, metadata=metadata)
        except OSError as exc:
            result.fail(path, f"cannot read: {exc.strerror or exc}")
            continue
        old = states.get(doc_id)
        if old is not None and old.complete(doc_hash):
            result.documents_unchanged += 1
        else:
            jobs.append(Job(path, doc_id, doc_hash, old))
    present = {document_id(path) for path in found.files}
    return Plan(jobs, states, present, found.unlisted, limit, metadata, result)


def is_whole(value: object) -> bool:
    """Whether `value` is a whole number (an int or numpy integer), not a bool, float or string: the
    check of every count a job takes (max_tokens, workers)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _max_tokens(requested: int | None, model_limit: int) -> int:
    """The section size limit. A whole number only: 100.0 sectioned as 100 does, but it is part of every
    document's hash, so a later run with 100 would re-ingest every document for nothing."""
    if requested is None:
        return model_limit
    if not is_whole(requested) or not 16 <= requested <= model_limit:
        raise InputError(
            f"max_tokens={requested!r} must be a whole number between 16 and the model's limit of {model_limit}"
        )
    return int(requested)


def read_states(store: Store, collection: str) -> dict[str, DocState]:
    states: dict[str, DocState] = {}
    for pid, payload in store.scroll_payloads(collection, STATE_FIELDS):
        state = states.setdefault(payload.get("doc_id", ""), DocState(source=payload.get("source", "")))
        state.ids.append(pid)
        state.hashes.add(payload.get("doc_hash", ""))
        state.section_count = payload.get("section_count", -1)
    return states


def prune(store: Store, collection: str, planned: Plan, roots: list[Path]) -> None:
    """Delete documents whose source lies under one of the roots but is no longer there. Not under a
    missing root or a folder that could not be listed: its files may all be there still (a share not
    mounted, a folder without permissions), and the report names it as failed. Nor one whose file is
    there but was not found under the roots: a hidden file, or one in a hidden folder, that was
    ingested by naming it (discovery leaves those out of a folder)."""
    resolved = [root.expanduser().resolve() for root in roots]
    for doc_id, state in planned.states.items():
        source = Path(state.source)
        if doc_id in planned.present or not _under(source, resolved) or _under(source, planned.unlisted):
            continue
        if source.is_file():
            continue
        store.delete_where(collection, {"doc_id": doc_id})
        planned.report.documents_deleted += 1
        planned.report.sections_deleted += len(state.ids)


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def build_index(store: Store, collection: str, result: IngestReport) -> None:
    """Index what was written, after the job's last write; on an embedded store writes wait while it
    runs, so the job does it once, at its end, and reports how long it took. Even when nothing changed:
    a job killed while indexing left its points written but not indexed, and the store's build returns
    at once when nothing was written or deleted since the last one."""
    result.index_seconds = round(store.build_index(collection), 3)
