"""The ingestion job on Ray Data, for when one machine is not enough: the same steps, spread over a cluster.

- Planning (discovery, change detection) and pruning run here, on the driver, against the collection,
  exactly as on one machine (`ingest.changes`): unchanged files are hashed, never parsed.
- Parsing and sectioning run as Ray tasks, one CPU each, each document in a child process under the
  job's time limit (`ingest.isolation`, as on one machine).
- Encoding runs in an actor pool: one actor per GPU (`num_gpus=1`), or CPU actors when the cluster has
  none. Each loads the encoder once, from an `EncoderSpec`, and `Encoder.encode` packs token-budget
  batches as on one machine.
- Writing (`points.write`: upsert, then delete stale points; a write that fails removes its documents
  and ends the job with the store's error, as on one machine) runs in writer actors. With a Qdrant
  server or cluster URL they write to it straight from the workers. An embedded store folder admits
  one process at a time, so a single writer actor, pinned to this machine, owns it while the job runs:
  the driver closes the folder after planning and takes it back (to prune) once the writer is gone,
  after a job stopped by an error as after a finished one.

Ray Data streams documents through the stages with backpressure; the driver only ever holds the job
list and one small partial report per written batch, never the corpus. Every stage's output is a
column of pickled values (our dataclasses and errors), so Ray Data never has to guess an Arrow schema
for them. A killed task or actor is retried by Ray (writes are idempotent); a job that still fails
raises a `RagkitError` naming the stage's own error, and running it again resumes it, as on one
machine.

Ray is imported here only, and only when a job runs: `pip install 'ragkit[ray]'`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import ingest
import ragkit
from ingest import changes, points
from ingest.isolation import DEFAULT_PARSE_TIMEOUT, prepare_isolated
from ingest.prepare import Job, Prepared, report_error
from ingest.report import IngestReport, check_writable
from ragkit.encoder import EncoderSpec, TokenCounter
from ragkit.errors import InputError, RagkitError, StoreError, StoreLockedError
from ragkit.store import CollectionOptions, Store
from ragkit.store.address import StoreAddress

log = logging.getLogger("ragkit.ingest")

RAY_EXTRA = "ragkit[ray]"
PARSE_DOCUMENTS_PER_TASK = 8  # enough to amortise a task's start, few enough to spread a small job
PARSE_TASK_MEMORY = 512 * 2**20  # measured: ~400 MiB per parsing worker with the parsers loaded
DOCUMENTS_PER_BATCH = 16  # per encoder call and per write: Encoder.encode packs token batches inside
SERVER_WRITERS = 4  # at most, against a server or cluster URL; a folder gets exactly one
LOCK_WAIT_SECONDS = 60.0  # how long a store folder may stay held by a writer that is going away
COLUMN = "item"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the task names in its errors
_RAISED = re.compile(r"^((?:\w+\.)*\w+(?:Error|Exception)): (.+)$", re.MULTILINE)  # "pkg.mod.Error: message"


def import_ray() -> ModuleType:
    """Ray with Ray Data, or an error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RagkitError(
            f"ingestion on Ray needs Ray Data, which is not installed ({exc}): pip install '{RAY_EXTRA}'"
        ) from exc
    return ray


def run_on_ray(
    encoder: EncoderSpec,
    address: StoreAddress,
    collection: str,
    paths: list[Path],
    *,
    ray: bool | str = True,
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
    """`ingest.pipeline.run` on Ray: the same options, the same report, the same points.

    `ray` is `True` (a local Ray, started for this job unless this process is connected to one
    already), `"auto"` (the cluster this machine belongs to) or a `ray://` URL. `workers` caps the
    parsing tasks running at once (default: as many as the cluster's free CPUs allow). The store must
    not be open in this process: an embedded folder is handed to the job's writer actor.
    """
    where = _check_address(ray, address)
    if workers is not None and (not changes.is_whole(workers) or workers < 1):
        raise InputError(
            f"workers={workers!r}: on Ray, the number of parsing tasks at once must be a whole number >= 1"
        )
    check_writable(report)
    ray_module = import_ray()
    started = time.perf_counter()
    facts = encoder.describe()
    store = address.open()
    try:
        planned = changes.plan(
            store,
            collection,
            facts,
            paths,
            max_tokens=max_tokens,
            metadata=metadata,
            options=collection_options,
        )
        if planned.jobs:  # a run over unchanged files never starts Ray
            if address.embedded:
                store.close()  # the writer actor owns the folder from here on
            try:
                with _connected(ray_module, where), _progress_bars(ray_module, progress):
                    for part in _stream(
                        ray_module,
                        planned,
                        facts.token_counter,
                        encoder,
                        address,
                        collection,
                        workers,
                        parse_timeout,
                    ):
                        planned.report.add(part)
            except BaseException:
                if address.embedded:
                    _wait_for_writer(address)
                raise
            if address.embedded:
                store = open_when_free(address)
        if prune:
            changes.prune(store, collection, planned, paths)
        if build_index:
            changes.build_index(store, collection, planned.report)
    finally:
        store.close()
    return planned.report.finish(started, report)


def _check_address(ray: bool | str, address: StoreAddress) -> str:
    """The address for `ray.init`: "local" starts a new local Ray."""
    if ray is True:
        return "local"
    if not isinstance(ray, str) or not (ray == "auto" or ray.startswith("ray://")):
        raise InputError(f"ray={ray!r}: expected True (a local Ray), 'auto' or a ray:// URL")
    if ray.startswith("ray://") and address.embedded:
        raise InputError(
            f"the embedded store {address} can only be written on this machine, but a ray:// cluster runs "
            "the job elsewhere: ingest into a Qdrant server or cluster (--url) instead"
        )
    return ray


@contextlib.contextmanager
def _connected(ray: ModuleType, where: str) -> Iterator[None]:
    """Connect for the job, shipping this ragkit's code to the workers; a connection made by the caller
    is used as it is, and left open."""
    if ray.is_initialized():
        yield
        return
    ray.init(
        address=where,
        runtime_env={"py_modules": [ragkit, ingest]},
        logging_level=logging.WARNING,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _progress_bars(ray: ModuleType, enabled: bool) -> Iterator[None]:
    context = ray.data.DataContext.get_current()
    before = context.enable_progress_bars
    context.enable_progress_bars = enabled
    try:
        yield
    finally:
        context.enable_progress_bars = before


def _stream(
    ray: ModuleType,
    planned: changes.Plan,
    counter: TokenCounter,
    encoder: EncoderSpec,
    address: StoreAddress,
    collection: str,
    workers: int | None,
    parse_timeout: float | None,
) -> Iterator[IngestReport]:
    """The partial reports of the written batches, as Ray Data streams the jobs through the stages; a
    writer's store error ends the job."""
    jobs = planned.jobs
    dataset = ray.data.from_items(
        [{COLUMN: pickle.dumps(job)} for job in jobs],
        override_num_blocks=math.ceil(len(jobs) / PARSE_DOCUMENTS_PER_TASK),
    )
    dataset = dataset.map_batches(
        _prepare_batch,
        fn_kwargs={"counter": counter, "max_tokens": planned.max_tokens, "timeout": parse_timeout},
        compute=ray.data.TaskPoolStrategy(size=workers) if workers else None,
        num_cpus=1,
        # Reserved so that a node never runs more parses than its memory holds; being a resource the
        # encoder does not ask for, it also keeps Ray Data from fusing parsing into the encoder actors.
        memory=PARSE_TASK_MEMORY,
    )
    count, resources, device = _encoder_actors(ray, encoder)
    dataset = dataset.map_batches(
        _EncodeStage,
        fn_constructor_kwargs={"spec": encoder, "device": device, "metadata": planned.metadata},
        batch_size=DOCUMENTS_PER_BATCH,
        compute=ray.data.ActorPoolStrategy(size=count),
        **resources,
    )
    dataset = dataset.map_batches(
        _WriteStage,
        fn_constructor_kwargs={"address": address, "collection": collection, "model": planned.report.model},
        batch_size=DOCUMENTS_PER_BATCH,
        **_writers(ray, address),
    )
    try:
        for row in dataset.iter_rows():
            part = pickle.loads(row[COLUMN])
            if isinstance(part, StoreError):  # a writer's error: its documents were removed
                raise part
            yield part
    except ray.exceptions.RayError as exc:
        raise RagkitError(
            f"ingestion on Ray stopped: {_cause(exc)}. Documents written so far stay complete; run the "
            "same job again to finish it"
        ) from exc


def _cause(exc: BaseException) -> str:
    """What stopped the job, in words. Ray's error reads as a traceback of the remote one: a first line
    naming only the task (in terminal colours), the stage's frames, its errors, then Ray's wrappers.
    The cause is our error there (it names the document or the model), else the first error there;
    failing both, Ray's own first line."""
    text = _ANSI.sub("", str(exc)).strip()
    raised = [match.groups() for match in _RAISED.finditer(text)]
    for kind, message in raised:
        if kind.startswith("ragkit.errors."):
            return message
    if raised:
        kind, message = raised[0]
        return f"{kind.rsplit('.', 1)[-1]}: {message}"
    return text.splitlines()[0] if text else type(exc).__name__


def _encoder_actors(ray: ModuleType, spec: EncoderSpec) -> tuple[int, dict[str, Any], str]:
    """How many encoder actors, what each reserves, and the device it loads on: one per GPU, else CPU
    actors (one per two CPUs, leaving the rest to parsing)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and spec.device != "cpu":
        return gpus, {"num_gpus": 1}, "cuda"
    if spec.device.startswith("cuda"):
        raise InputError(f"device {spec.device!r} was asked for, but the Ray cluster has no GPU")
    return max(1, int(resources.get("CPU", 1)) // 2), {"num_cpus": 1}, "cpu"


def _writers(ray: ModuleType, address: StoreAddress) -> dict[str, Any]:
    """Writer actors: up to a few against a server; exactly one, on this node, for a store folder."""
    if not address.embedded:
        return {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=SERVER_WRITERS), "num_cpus": 0}
    here = {"ray.io/node-id": ray.get_runtime_context().get_node_id()}
    return {"compute": ray.data.ActorPoolStrategy(size=1), "num_cpus": 0, "label_selector": here}


def _unpack(batch: dict[str, np.ndarray]) -> list[Any]:
    return [pickle.loads(blob) for blob in batch[COLUMN]]


def _pack(items: list[Any]) -> dict[str, np.ndarray]:
    return {COLUMN: np.array([pickle.dumps(item) for item in items], dtype=object)}


def _prepare_batch(
    batch: dict[str, np.ndarray], counter: TokenCounter, max_tokens: int, timeout: float | None
) -> dict[str, np.ndarray]:
    """A parsing task: jobs in, each job's `Prepared` or `(job, error)` out. Each document is parsed in a
    child process under the job's time limit, as on one machine (`ingest.isolation`)."""
    jobs = _unpack(batch)
    return _pack(list(prepare_isolated(jobs, counter, max_tokens, processes=1, timeout=timeout)))


class _EncodeStage:
    """An encoder actor: loads the model once, then turns prepared documents into their points."""

    def __init__(self, spec: EncoderSpec, device: str, metadata: dict[str, Any]) -> None:
        self._encoder = spec.load(device=device)
        self._metadata = metadata

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = _unpack(batch)
        prepared = [item for item in items if isinstance(item, Prepared)]
        written = iter(points.embed(prepared, self._encoder, self._metadata) if prepared else [])
        return _pack([next(written) if isinstance(item, Prepared) else item for item in items])


class _WriteStage:
    """A writer actor: writes documents' points and returns what it did as a partial report. A write
    that fails removes its group of documents, as on one machine (`points.write`), and returns the
    store's error, with which the driver ends the job: returned, not raised, so that the driver gets
    our error rather than Ray's account of a failed task, and the job's actors wind down as after a
    finished job (the driver waits for an embedded folder's writer to hand it back)."""

    def __init__(self, address: StoreAddress, collection: str, model: str) -> None:
        self._store = open_when_free(address)
        self._collection, self._model = collection, model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        part = IngestReport(collection=self._collection, model=self._model)
        written: list[points.Written] = []
        failed: list[Job] = []  # their old points go, as on one machine (`points.write`)
        for first, second in _unpack(batch):
            if isinstance(first, Prepared):
                written.append((first, second))
            else:
                report_error(part, first, second)
                failed.append(first)
        try:
            part.sections_deleted = points.write(self._store, self._collection, written, failed)
        except StoreError as exc:
            return _pack([exc])
        for prepared, document_points in written:
            points.count_written(part, prepared, document_points)
        return _pack([part])


def _wait_for_writer(address: StoreAddress) -> None:
    """After a job stopped by an error, wait until its writer actor has handed the folder back, as after a
    finished job. Ray Data stops the job's actors when the driver stops reading, but they take a moment
    to go, and whoever opens the folder next (a re-run, a search) would meanwhile find it locked. A
    folder still held after the wait is logged, never raised over the error that stopped the job."""
    try:
        open_when_free(address).close()
    except RagkitError as exc:
        log.warning("the store %s is still held after the job stopped: %s", address, exc)


def open_when_free(address: StoreAddress, wait: float = LOCK_WAIT_SECONDS) -> Store:
    """Open the store; a folder still held by a writer that is going away (the job's end, or a killed
    writer's restart) is waited for, up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return address.open()
        except StoreLockedError:
            if not address.embedded or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
