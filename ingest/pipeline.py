"""The one-machine ingestion job: plan -> (workers) parse + section -> (main) embed -> (writer thread) upsert.

Crash safety comes from the collection itself. Every point carries its document's hash and section
count; a document counts as done only when exactly `section_count` points with one hash exist. A
document is written by upserting its new points (deterministic ids, so repeats are harmless) and then
deleting the ones that are no longer part of it. A job killed anywhere leaves either the old complete
set, a state that the next run sees as incomplete and redoes, or the new complete set.

The job depends on an encoder and a store, never on `ragkit.open()`'s `Kit`; its steps (planning,
preparing, embedding, writing, pruning, the report) live in their own modules, which the Ray runner
(`ingest.ray_runner`) runs too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from ingest import changes, points
from ingest.isolation import DEFAULT_PARSE_TIMEOUT, prepare_isolated
from ingest.prepare import Job, Prepared, report_error
from ingest.report import IngestReport, Progress, check_writable
from ragkit.errors import InputError
from ragkit.store import CollectionOptions, Store

log = logging.getLogger("ragkit.ingest")

SMALL_JOB_DOCUMENTS = 32
WORKERS_PER_CPU = 4  # parsing is CPU-bound: past this many processes a core, more only cost memory
EMBED_FLUSH_TOKENS = 65_536  # sections of several documents are embedded together, for full batches


def run(
    encoder: Any,
    store: Store,
    collection: str,
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
    parse_timeout: float | None = DEFAULT_PARSE_TIMEOUT,
) -> IngestReport:
    """Bring `collection` in line with the files under `paths`; return (and optionally write) the report.

    `encoder` is an `Encoder` (or a stand-in with its attributes and `encode`). `workers` parsing
    processes (default: chosen by job size and machine, see `_auto_workers`; 0 and 1 both parse one
    document at a time, in one child process); `parse_timeout` seconds per document (None: no limit),
    after which its parsing process is killed and the document fails (see `ingest.isolation`);
    `metadata` is stored with every section; `prune` deletes documents under `paths` whose files are gone.
    `collection_options` shape a collection this job creates (and add declared indexes to an existing
    one). `build_index` indexes the new points after the last write, as one step whose duration is
    reported; the HTTP service turns it off, to build once many uploads have arrived instead of after each.
    """
    started = time.perf_counter()
    _check_workers(workers)
    check_writable(report)
    planned = changes.plan(
        store,
        collection,
        encoder,
        paths,
        max_tokens=max_tokens,
        metadata=metadata,
        options=collection_options,
    )
    result = planned.report
    bar = Progress(len(planned.jobs), enabled=progress)
    try:
        with _Writer(store, collection) as writer:
            pending: list[Prepared] = []
            failed: list[Job] = []  # their old points go with the next write
            pending_tokens = 0
            processes = _auto_workers(len(planned.jobs), encoder.device.type) if workers is None else workers
            parsing = prepare_isolated(
                planned.jobs,
                encoder.token_counter,
                planned.max_tokens,
                processes=processes,
                timeout=parse_timeout,
            )
            # Closed whatever ends the loop: an error's traceback keeps this frame alive, and an open
            # generator its parsing processes with it, for as long as the error is kept (in a notebook,
            # until the next one).
            with contextlib.closing(parsing) as outcomes:
                for outcome in outcomes:
                    if isinstance(outcome, Prepared):
                        pending.append(outcome)
                        pending_tokens += sum(section.tokens for section in outcome.sections)
                    else:
                        report_error(result, *outcome)
                        failed.append(outcome[0])
                        bar.advance(documents=1)
                    if pending_tokens >= EMBED_FLUSH_TOKENS:
                        _embed_and_write(pending, failed, encoder, writer, planned.metadata, result, bar)
                        pending, failed, pending_tokens = [], [], 0
            _embed_and_write(pending, failed, encoder, writer, planned.metadata, result, bar)
        result.sections_deleted += writer.sections_deleted
    finally:
        bar.close()
    if prune:
        changes.prune(store, collection, planned, paths)
    if build_index:
        changes.build_index(store, collection, result)
    return result.finish(started, report)


def _check_workers(workers: int | None) -> None:
    """Refuse a `workers` that is not a count, before anything is done: a negative one parsed in one
    process as if it were 0, and 1.5 or "2" failed only once parsing began, as the supervisor's error.
    Refuse one far past the machine's cores too: each process holds its own parsers (about 200 MiB
    before its first document, up to `ingest.isolation.PARSE_MEMORY_LIMIT` while parsing), so
    `--workers 1000` on a large job started a thousand of them, some 200 GiB before the first parse,
    for no more speed."""
    if workers is None:
        return
    if not changes.is_whole(workers) or workers < 0:
        raise InputError(
            f"workers={workers!r} must be a whole number of parsing processes, 0 or more (0 and 1 both "
            "parse one document at a time), or None to choose by the job's size"
        )
    cpus = os.cpu_count() or 1
    if workers > WORKERS_PER_CPU * cpus:
        raise InputError(
            f"workers={workers} is more parsing processes than this machine can keep busy: at most "
            f"{WORKERS_PER_CPU * cpus} ({WORKERS_PER_CPU} per CPU, {cpus} here); each holds its own parsers"
        )


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
    failed: list[Job],
    encoder: Any,
    writer: _Writer,
    metadata: dict[str, Any],
    result: IngestReport,
    bar: Progress,
) -> None:
    written = points.embed(batch, encoder, metadata)
    if not written and not failed:
        return
    writer.put(written, failed)
    for prepared, document_points in written:
        tokens = points.count_written(result, prepared, document_points)
        bar.advance(documents=1, sections=len(document_points), tokens=tokens)


class _Writer:
    """Upserts beside the embedding loop, through a bounded queue, so memory stays flat.

    Per group of documents (one embedding flush), `points.write`: upsert all their new points, then
    delete their stale ones, and the old points of the group's documents that failed. The first store
    error stops the writer; the job then ends with that error.
    """

    def __init__(self, store: Store, collection: str, depth: int = 4) -> None:
        self._store, self._collection = store, collection
        self._queue: queue.Queue[tuple[list[points.Written], list[Job]] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="ragkit-writer", daemon=True)
        self.sections_deleted = 0

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def put(self, documents: list[points.Written], failed: list[Job]) -> None:
        self._raise_if_failed()
        self._queue.put((documents, failed))

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead writer
            try:
                self.sections_deleted += points.write(self._store, self._collection, *item)
            except BaseException as exc:  # the group is removed (`points.write`); the producer raises it
                self._error = exc
