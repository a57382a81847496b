"""The ingestion job: discover -> (workers) parse + section -> (main) embed -> (writer thread) upsert.

Crash safety comes from the collection itself. Every point carries its document's hash and section
count; a document counts as done only when exactly `section_count` points with one hash exist. A
document is written by upserting its new points (deterministic ids, so repeats are harmless) and then
deleting the ones that are no longer part of it. A job killed anywhere leaves either the old complete
set, a state that the next run sees as incomplete and redoes, or the new complete set.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.discover import discover, document_hash, document_id
from ingest.parse import UnsupportedFormatError
from ingest.prepare import DocState, Job, Prepared, prepare
from ingest.report import IngestReport, Progress
from ingest.sections import Section
from ingest.worker import start_parsing_process
from ragkit.encoder import TokenCounter
from ragkit.errors import InputError, RagkitError, StoreError
from ragkit.store import CollectionOptions, Point, Store, check_metadata, point_id, section_payload

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
    collection_options: CollectionOptions | None = None,
    build_index: bool = True,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`; return (and optionally write) the report.

    `workers` parsing processes (default: chosen by job size and machine, see `_auto_workers`; 0 parses
    in this process); `metadata` is stored with every section; `prune` deletes documents under `paths`
    whose files are gone. `collection_options` shape a collection this job creates (and add declared
    indexes to an existing one). `build_index` indexes the new points after the last write, as one step
    whose duration is reported (also when nothing changed, which finishes a build that a kill cut short); the HTTP service turns it off, because on an embedded store it would
    block searches for as long as it runs.
    """
    started = time.perf_counter()
    encoder = kit.encoder
    limit = _max_tokens(max_tokens, encoder.max_length)
    metadata = check_metadata(metadata or {})
    store, collection = kit.store, kit.collection
    store.ensure_collection(collection, dim=encoder.dim, model=encoder.name, options=collection_options)
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
            for outcome in _prepare_all(jobs, encoder.token_counter, limit, workers, encoder.device.type):
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
    # Even when nothing changed: a job killed while indexing left its points written but not indexed,
    # and the engine's build returns at once when there is nothing to do.
    if build_index:
        result.index_seconds = round(store.build_index(collection), 3)
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


def _prepare_all(
    jobs: list[Job], counter: TokenCounter, max_tokens: int, workers: int | None, device: str
) -> Iterator[Prepared | tuple[Job, Exception]]:
    """Yield each job's sections or error, with at most 2 × workers documents in flight.

    If the worker pool breaks (a parser crashed its process, or spawn cannot re-import the caller's
    script, as from stdin), the unfinished documents are parsed here instead: the job still completes.
    """
    workers = _auto_workers(len(jobs), device) if workers is None else workers
    if workers == 0 or len(jobs) <= 1:
        yield from _prepare_here(jobs, counter, max_tokens)
        return
    done: set[int] = set()
    try:
        yield from _prepare_in_pool(jobs, counter, max_tokens, workers, done)
    except BrokenProcessPool as exc:
        log.warning("parsing workers stopped (%s); parsing the remaining documents in this process", exc)
        yield from _prepare_here([job for i, job in enumerate(jobs) if i not in done], counter, max_tokens)


def _prepare_here(
    jobs: list[Job], counter: TokenCounter, max_tokens: int
) -> Iterator[Prepared | tuple[Job, Exception]]:
    for job in jobs:
        try:
            yield prepare(job, counter, max_tokens)
        except Exception as exc:  # one bad document never stops the job
            yield job, _reportable(exc)


def _prepare_in_pool(
    jobs: list[Job], counter: TokenCounter, max_tokens: int, workers: int, done: set[int]
) -> Iterator[Prepared | tuple[Job, Exception]]:
    # spawn, not fork: the parent holds torch's thread pools, which a forked child can deadlock on.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=start_parsing_process) as pool:
        remaining = iter(enumerate(jobs))
        in_flight: dict[Future[Prepared], int] = {}
        while True:
            while len(in_flight) < 2 * workers and (item := next(remaining, None)) is not None:
                in_flight[pool.submit(prepare, item[1], counter, max_tokens)] = item[0]
            if not in_flight:
                return
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                index = in_flight.pop(future)
                try:
                    outcome: Prepared | tuple[Job, Exception] = future.result()
                except BrokenProcessPool:
                    raise
                except Exception as exc:
                    outcome = jobs[index], _reportable(exc)
                done.add(index)
                yield outcome


def _auto_workers(documents: int, device: str) -> int:
    """Parsing processes by default. None for small jobs, where starting them (each imports the parsers,
    ~2 s here) costs more than it saves; none on a small CPU-only machine either, where the encoder already
    keeps every core busy. Else up to 4 beside a GPU, fewer beside a CPU encoder."""
    cpus = os.cpu_count() or 1
    if documents < SMALL_JOB_DOCUMENTS or (device == "cpu" and cpus <= 4):
        return 0
    return max(1, min(4, cpus - 1 if device != "cpu" else cpus // 4))


def _reportable(exc: Exception) -> Exception:
    if isinstance(exc, RagkitError):
        return exc
    return RagkitError(f"{type(exc).__name__}: {exc}")


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
    return Point(point_id(job.doc_id, index, section.embed_text), vector, payload, text=section.embed_text)


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
                self._remove(item)

    def _remove(self, item: list[tuple[Prepared, list[Point]]]) -> None:
        """Delete the documents of a group whose write failed part way, so none stays half-written.

        The process lives on after a refused write (a full disk), unlike after a kill, so it can leave
        each document complete or absent rather than for the next run to redo; that run writes them again.
        """
        doc_ids = sorted({prepared.job.doc_id for prepared, _ in item})
        try:
            self._store.delete_where(self._collection, {"doc_id": doc_ids})
        except Exception as exc:
            log.warning(
                "could not remove the partly written documents %s (%s); the next run redoes them",
                doc_ids,
                exc,
            )


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
