"""Ingestion jobs for uploaded documents: queued, run one at a time, their reports kept for polling.

A document's identity is (collection, uploaded file name): the upload is ingested from a path named
after a digest of the two, so uploading `report.pdf` again updates that document (or finds it unchanged)
instead of adding a copy. The file is removed once ingested; the collection holds the result.

Jobs run one at a time because each one already keeps the engine busy, and because two jobs could write
the same document. Their records live in memory, the last MAX_JOBS of them: the collection, not the job
list, is the source of truth.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import RagkitError, StoreError
from ragkit.server.collections import Collections, CollectionView
from ragkit.server.engine import Engine
from ragkit.server.metrics import Metrics
from ragkit.server.uploads import Upload
from ragkit.store import CollectionOptions, SchemaError

log = logging.getLogger("ragkit.server")

MAX_JOBS = 1000


@dataclass
class Job:
    """One upload's ingestion: `status` is queued, running, succeeded or failed."""

    id: str
    collection: str
    filename: str
    doc_id: str
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Jobs:
    """Accepts uploads, runs their ingestion on one job thread, and answers for their status."""

    def __init__(
        self,
        engine: Engine,
        collections: Collections,
        work_dir: Path,
        metrics: Metrics,
        collection_options: CollectionOptions | None = None,
        *,
        index_after: int,
    ) -> None:
        self._engine = engine
        self._index_after = index_after
        self._collection_options = collection_options
        self._collections = collections
        self._metrics = metrics
        self.staging = work_dir / "incoming"
        self._documents = work_dir / "documents"
        for folder in (self.staging, self._documents):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # From a server that stopped mid-upload, mid-queue or mid-ingestion: the collection, not these
        # files, says what was ingested; a document killed mid-ingestion converges when uploaded again.
        for folder in (self.staging, self._documents):
            for leftover in folder.iterdir():
                leftover.unlink()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragkit-ingest")

    def submit(self, collection: str, upload: Upload) -> dict[str, Any]:
        """Queue the ingestion of a staged upload; returns the new job's record."""
        from ingest.discover import document_id

        target = self._target(collection, upload)
        job = Job(
            id=uuid.uuid4().hex, collection=collection, filename=upload.filename, doc_id=document_id(target)
        )
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
            record = job.to_dict()
        self._runner.submit(self._run, job, upload, target)
        return record

    def delete_collection(self, name: str) -> Future[int | None]:
        """Delete a collection once the uploads queued before this are ingested, as they were asked for
        first; an upload after it creates the collection anew. The future gives the points it held."""
        return self._runner.submit(self._delete_collection, name)

    def _delete_collection(self, name: str) -> int | None:
        store = self._collections.store
        try:
            points = store.count(name)
        except SchemaError:  # one that ragkit cannot read; the delete says whether it may go
            points = None
        store.delete_collection(name)
        self._engine.call(self._collections.forget, name).result()
        return points

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.to_dict()

    def close(self) -> None:
        """Let the running job finish; queued ones are dropped (their staged files go at the next start)."""
        self._runner.shutdown(wait=True, cancel_futures=True)

    def _target(self, collection: str, upload: Upload) -> Path:
        digest = hashlib.sha256(f"{collection}\0{upload.filename}".encode()).hexdigest()[:32]
        return (self._documents / f"{digest}{upload.suffix}").resolve()

    def _run(self, job: Job, upload: Upload, target: Path) -> None:
        self._update(job, status="running", started=time.time())
        try:
            report = self._ingest(job, upload, target)
        except Exception as exc:
            if not isinstance(exc, RagkitError):
                log.exception("ingestion job %s failed", job.id)
            message = str(exc) if isinstance(exc, RagkitError) else f"internal error ({type(exc).__name__})"
            self._update(job, status="failed", error=message, finished=time.time())
        else:
            status = "succeeded" if report["ok"] else "failed"
            self._update(job, status=status, report=report, finished=time.time())
        finally:
            upload.path.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
        self._metrics.jobs.labels(status=job.status).inc()

    def _ingest(self, job: Job, upload: Upload, target: Path) -> dict[str, Any]:
        from ingest.pipeline import run

        kit = self._engine.call(self._collections.get, job.collection, create=True).result()
        encoder = self._engine.call(lambda: kit.encoder).result()
        os.replace(upload.path, target)
        view = CollectionView(self._engine, kit, encoder, background=True)
        # The view's encoder routes through the engine. Parsing runs in this thread: an upload is one
        # document, and worker processes would take longer to start than it takes to parse.
        report = run(
            view.encoder,
            view.store,
            view.collection,
            [target],
            workers=0,
            metadata={"filename": job.filename},
            collection_options=self._collection_options,
            build_index=False,
        )
        # New sections are searched exactly, and deleted ones stay in the index, until the collection's
        # index is built: here, in this thread, once enough have changed. The store keeps the count, so it
        # holds across restarts of the service.
        if self._collections.store.unindexed(job.collection) >= self._index_after:
            try:
                report.index_seconds = self._collections.store.build_index(job.collection)
            except StoreError as exc:  # the upload itself is in; the next one tries the build again
                log.warning(
                    "index build of %r failed, new points stay searched exactly: %s", job.collection, exc
                )
        result = report.to_dict() | {"ok": report.ok}
        # The client knows its file by the name it sent, not by the server's generated path.
        for entry in (*result["documents_failed"], *result["documents_skipped"]):
            entry["path"] = job.filename
        return result

    def _update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(job, name, value)
