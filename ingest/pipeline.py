"""The ingestion job: discover -> (workers) parse + section -> (main) embed -> (writer thread) upsert.

Crash safety comes from the collection itself. Every point carries its document's hash and section
count; a document counts as done only when exactly `section_count` points with one hash exist. A
document is written by upserting its new points (deterministic ids, so repeats are harmless) and then
deleting the ones that are no longer part of it. A job killed anywhere leaves either the old complete
set, a state that the next run sees as incomplete and redoes, or the new complete set.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.discover import discover, document_hash, document_id
from ingest.isolation import DEFAULT_PARSE_TIMEOUT, prepare_isolated
from ingest.parse import UnsupportedFormatError
from ingest.prepare import DocState, Job, Prepared
from ingest.report import IngestReport, Progress
from ingest.sections import Section
from ragkit.errors import InputError, StoreError
from ragkit.store import Point, Store, check_metadata, point_id, section_payload

if TYPE_CHECKING:
    from ragkit.kit import Kit

log = logging.getLogger("ragkit.ingest")

STATE_FIELDS = ["doc_id", "doc_hash", "section_count", "source"]
SMALL_JOB_DOCUMENTS = 32
EMBED_FLUSH_TOKENS = 65_536  # sections of several documents are embedded together, for full batches


def run(
    kit: Kit,
    paths: list[Path],
    *,
    max_tokens: int | None = None,
    prune: bool = False,
    workers: int | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = False,
    report: Path | None = None,
    parse_timeout: float | None = DEFAULT_PARSE_TIMEOUT,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`; return (and optionally write) the report.

    `workers` parsing processes (default: chosen by job size and machine, see `_auto_workers`; 0 and 1
    both parse one document at a time, in one child process); `parse_timeout` seconds per document
    (None: no limit), after which its parsing process is killed and the document fails (see
    `ingest.isolation`); `metadata` is stored with every section; `prune` deletes documents under
    `paths` whose files are gone.
    """
    started = time.perf_counter()
    encoder = kit.encoder
    limit = _max_tokens(max_tokens, encoder.max_length)
    metadata = check_metadata(metadata or {})
    store, collection = kit.store, kit.collection
    store.ensure_collection(collection, dim=encoder.dim, model=encoder.name)
    result = IngestReport(collection=collection, model=encoder.name)

    found = discover(paths)
    for path in found.missing:
        result.fail(path, "no such file or directory")
    for path in found.unsupported:
        result.skip(path, f"unsupported file type {path.suffix or '(none)'!r}")
    result.documents_seen = len(found.files) + len(found.unsupported) + len(found.missing)
    states = _read_states(store, collection)
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

    bar = Progress(len(jobs), enabled=progress)
    tokens_before = encoder.stats.tokens
    try:
        with _Writer(store, collection) as writer:
            pending: list[Prepared] = []
            pending_tokens = 0
            processes = _auto_workers(len(jobs), encoder.device.type) if workers is None else workers
            for outcome in prepare_isolated(
                jobs, encoder.token_counter, limit, processes=processes, timeout=parse_timeout
            ):
                if isinstance(outcome, Prepared):
                    pending.append(outcome)
                    pending_tokens += sum(section.tokens for section in outcome.sections)
                else:
                    job, error = outcome
                    if isinstance(error, UnsupportedFormatError):
                        result.skip(job.path, str(error))
                    else:
                        result.fail(job.path, str(error))
                    bar.advance(documents=1)
                if pending_tokens >= EMBED_FLUSH_TOKENS:
                    _embed_and_write(pending, encoder, writer, metadata, result, bar)
                    pending, pending_tokens = [], 0
            _embed_and_write(pending, encoder, writer, metadata, result, bar)
        result.sections_deleted += writer.sections_deleted
    finally:
        bar.close()
    result.tokens_embedded = encoder.stats.tokens - tokens_before
    if prune:
        _prune(store, collection, states, {document_id(p) for p in found.files}, paths, result)
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(result.summary())
    if report is not None:
        result.write(report)
    return result


def _max_tokens(requested: int | None, model_limit: int) -> int:
    if requested is None:
        return model_limit
    if not 16 <= requested <= model_limit:
        raise InputError(f"max_tokens={requested} must be between 16 and the model's limit of {model_limit}")
    return requested


def _read_states(store: Store, collection: str) -> dict[str, DocState]:
    states: dict[str, DocState] = {}
    for pid, payload in store.scroll_payloads(collection, STATE_FIELDS):
        state = states.setdefault(payload.get("doc_id", ""), DocState(source=payload.get("source", "")))
        state.ids.append(pid)
        state.hashes.add(payload.get("doc_hash", ""))
        state.section_count = payload.get("section_count", -1)
    return states


def _auto_workers(documents: int, device: str) -> int:
    """Parsing processes by default. One for small jobs, where starting more (each imports the parsers,
    ~2 s here) costs more than it saves; one on a small CPU-only machine too, where the encoder already
    keeps every core busy. Else up to 4 beside a GPU, fewer beside a CPU encoder. (0 means one.)"""
    cpus = os.cpu_count() or 1
    if documents < SMALL_JOB_DOCUMENTS or (device == "cpu" and cpus <= 4):
        return 0
    return max(1, min(4, cpus - 1 if device != "cpu" else cpus // 4))


def _embed_and_write(
    batch: list[Prepared],
    encoder: Any,
    writer: _Writer,
    metadata: dict[str, Any],
    result: IngestReport,
    bar: Progress,
) -> None:
    texts = [section.embed_text for prepared in batch for section in prepared.sections]
    if not texts:
        return
    vectors = iter(encoder.encode(texts))
    written = [
        (
            prepared,
            [
                _point(prepared, i, section, next(vectors), metadata)
                for i, section in enumerate(prepared.sections)
            ],
        )
        for prepared in batch
    ]
    writer.put(written)
    for prepared, points in written:
        result.documents_ingested += 1
        result.sections_embedded += len(points)
        bar.advance(documents=1, sections=len(points), tokens=sum(s.tokens for s in prepared.sections))


def _point(prepared: Prepared, index: int, section: Section, vector: Any, metadata: dict[str, Any]) -> Point:
    job = prepared.job
    payload = section_payload(
        text=section.text,
        doc_id=job.doc_id,
        source=str(job.path),
        title=prepared.title,
        breadcrumb=section.breadcrumb,
        section_index=index,
        section_count=len(prepared.sections),
        tokens=section.tokens,
        page_start=section.page_start,
        page_end=section.page_end,
        doc_hash=job.doc_hash,
        metadata=metadata,
    )
    return Point(point_id(job.doc_id, index, section.embed_text), vector, payload)


class _Writer:
    """Upserts beside the embedding loop, through a bounded queue, so memory stays flat.

    Per group of documents (one embedding flush): upsert all their new points, then delete their stale
    ones, in as few requests as the store's size limit allows. A job stopped in between leaves those
    documents with two hashes, which the next run sees as incomplete and redoes. The first store error
    stops the writer; the job then ends with that error.
    """

    def __init__(self, store: Store, collection: str, depth: int = 4) -> None:
        self._store, self._collection = store, collection
        self._queue: queue.Queue[list[tuple[Prepared, list[Point]]] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="ragkit-writer", daemon=True)
        self.sections_deleted = 0

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def put(self, documents: list[tuple[Prepared, list[Point]]]) -> None:
        self._raise_if_failed()
        self._queue.put(documents)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StoreError(
                f"writing to collection {self._collection!r} failed: {self._error}"
            ) from self._error

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead writer
            try:
                self._store.upsert(self._collection, [point for _, points in item for point in points])
                stale = sorted(
                    pid
                    for prepared, points in item
                    if prepared.job.old is not None
                    for pid in set(prepared.job.old.ids) - {point.id for point in points}
                )
                if stale:
                    self._store.delete_points(self._collection, stale)
                    self.sections_deleted += len(stale)
            except BaseException as exc:  # reported by the producer thread
                self._error = exc


def _prune(
    store: Store,
    collection: str,
    states: dict[str, DocState],
    present: set[str],
    roots: list[Path],
    result: IngestReport,
) -> None:
    """Delete documents whose source lies under one of the roots but is no longer there."""
    resolved = [root.expanduser().resolve() for root in roots]
    for doc_id, state in states.items():
        source = Path(state.source)
        if doc_id in present or not any(source == r or r in source.parents for r in resolved):
            continue
        store.delete_where(collection, {"doc_id": doc_id})
        result.documents_deleted += 1
        result.sections_deleted += len(state.ids)
