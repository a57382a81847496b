"""Ingestion on Ray Data: the same job as on one machine, on a real local Ray and a real two-node cluster.

Real parts throughout: the packaged MiniLM, real parsing, the embedded Qdrant store, Ray's own
processes (killed for real in the fault test).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

# The dev extra installs ray; a missing one is a failed install, not a reason to skip.
import ray  # noqa: E402

import ragkit
from ingest.ray_runner import run_on_ray
from ragkit.encoder import EncoderSpec
from ragkit.store import PAYLOAD_FIELDS, Store, edge
from ragkit.store.address import StoreAddress
from tests import corpus as retrieval_corpus
from tests import test_crashes as crashes
from tests.test_ingest import overflowing_checkpoint, write_corpus

REPO = Path(__file__).resolve().parents[1]
METADATA = {"team": "docs"}
REPORT_FIELDS = (
    "documents_seen", "documents_ingested", "documents_unchanged", "documents_failed", "documents_skipped",
    "documents_deleted", "sections_embedded", "sections_deleted", "tokens_embedded",
)  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of two CPUs whose workers import this checkout, as the driver does."""
    ray.init(
        address="local",  # a new instance, even where a cluster runs on this machine
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    yield
    ray.shutdown()


def point_set(store: Path, collection: str = "docs") -> dict[str, str]:
    """id -> hash of the whole payload, for every point of the collection."""
    with Store.open(path=store) as opened:
        return {
            pid: hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            for pid, payload in opened.scroll_payloads(collection, [*PAYLOAD_FIELDS, *METADATA])
        }


def ingest(store: Path, model: Path, paths: list[Path], **options) -> dict:
    with ragkit.open("docs", store=store, model=str(model), device="cpu") as kit:
        report = kit.ingest(paths, metadata=METADATA, max_tokens=128, **options)
    return {field: getattr(report, field) for field in REPORT_FIELDS}


def mixed_corpus(folder: Path) -> Path:
    """Markdown, text and HTML documents, one that fails to parse and one of an unsupported type."""
    docs = retrieval_corpus.write(folder)
    write_corpus(docs / "more")
    (docs / "empty.txt").write_text("")
    (docs / "notes.xyz").write_text("not a supported type")
    return docs


def test_a_ray_job_updates_a_store_as_one_machine_does(local_ray, tmp_path, minilm_path):
    # A whole mixed corpus on Ray is the two-node cluster's case below; here Ray takes over a store that
    # one machine wrote, as a job that changes, prunes and skips documents.
    docs = mixed_corpus(tmp_path)
    one, on_ray = tmp_path / "one-machine", tmp_path / "ray"
    first = ingest(one, minilm_path, [docs], workers=0)
    assert first["documents_ingested"] == 7
    shutil.copytree(one, on_ray)

    # A changed file loses its stale sections, a deleted one is pruned, a broken one fails, and a changed
    # one that now fails loses its old points: the same on Ray.
    (docs / "astronomy.md").write_text(
        "# Astronomy notes\n\n## Comets\n\nComets are balls of ice and dust.\n"
    )
    (docs / "more" / "engines.txt").unlink()
    (docs / "more" / "music.html").write_text("<html><body></body></html>")
    expected = ingest(one, minilm_path, [docs], workers=0, prune=True)
    before = point_set(on_ray)
    report = ingest(on_ray, minilm_path, [docs], ray=True, prune=True)
    assert report == expected
    assert report["documents_ingested"] == 1 and report["documents_unchanged"] == 4
    # Each deleted point counted once, whether stale, pruned or of a document that now fails.
    deleted = len(before.keys() - point_set(on_ray).keys())
    assert report["documents_deleted"] == 1 and report["sections_deleted"] == deleted > 2
    assert [Path(f["path"]).name for f in report["documents_failed"]] == ["empty.txt", "music.html"]
    assert "its previous version was removed" in report["documents_failed"][1]["error"]
    assert point_set(on_ray) == point_set(one)

    # Unchanged files are hashed on the driver: with nothing to parse, the job never reaches the cluster.
    (docs / "empty.txt").unlink()
    (docs / "more" / "music.html").unlink()
    again = ingest(on_ray, minilm_path, [docs], ray=True)
    assert again["documents_unchanged"] == 5 and again["sections_embedded"] == 0
    assert point_set(on_ray) == point_set(one)


def many_documents(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        parts = "\n\n".join(
            f"## Part {j}\n\n"
            + " ".join(f"document {i} part {j} sentence {k} on item {i * j + k}." for k in range(20))
            for j in range(3)
        )
        (folder / f"doc{i:02}.md").write_text(f"# Document {i}\n\n{parts}\n")
    return folder


def stage_processes(stage: str) -> list[psutil.Process]:
    """The worker processes of one stage of this test's local Ray (its raylet is our child), found by
    the title Ray gives them."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        with contextlib.suppress(psutil.Error):
            if (
                title.startswith("ray::")
                and stage in title
                and psutil.Process(os.getpid()) in process.parents()
            ):
                found.append(process)
    return found


class Killer(threading.Thread):
    """SIGKILLs the first process of each stage once it is up and the job has been running a while."""

    def __init__(self, stages: list[str], after: float) -> None:
        super().__init__(daemon=True)
        self.stages, self.after = stages, after
        self.killed: list[tuple[str, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        for stage in self.stages:
            while not self.done.is_set():
                processes = stage_processes(stage)
                if processes and time.monotonic() - started >= self.after:
                    processes[0].send_signal(signal.SIGKILL)
                    self.killed.append((stage, processes[0].pid))
                    break
                time.sleep(0.05)


def test_killed_encoder_and_writer_actors_mid_job_still_converge(local_ray, tmp_path, minilm_path):
    docs = many_documents(tmp_path / "docs", 32)
    ingest(tmp_path / "clean", minilm_path, [docs], workers=0)
    clean = point_set(tmp_path / "clean")

    killer = Killer(["_EncodeStage", "_WriteStage"], after=8.0)
    killer.start()
    try:
        report = ingest(tmp_path / "killed", minilm_path, [docs], ray=True)
    except ragkit.RagkitError as exc:  # allowed: a clear error, and a re-run that finishes the job
        assert "run the same job again" in str(exc)
        report = None
    killer.done.set()
    killer.join()
    assert [stage for stage, _ in killer.killed] == ["_EncodeStage", "_WriteStage"], "kills must land mid-job"
    if report is not None:
        assert report["documents_ingested"] == 32 and not report["documents_failed"]

    ingest(tmp_path / "killed", minilm_path, [docs], ray=True)
    assert point_set(tmp_path / "killed") == clean


def test_a_ray_job_stopped_by_an_encoder_error_names_the_cause_and_hands_the_store_back(
    local_ray, tmp_path, tiny_gte_dir
):
    # The runner itself, not Kit.ingest, which waits for the folder on its own before reopening it.
    model = overflowing_checkpoint(tiny_gte_dir, tmp_path / "model")
    store = tmp_path / "store"
    with pytest.raises(ragkit.RagkitError) as stopped:  # the traceback stays alive, as a caller's would
        run_on_ray(
            EncoderSpec(str(model), "cpu"),
            StoreAddress(path=store),
            "docs",
            [write_corpus(tmp_path / "docs")],
        )
    with Store.open(path=store) as opened:  # at once: the writer actor has let the folder go
        assert opened.count("docs") == 0
    # Ray's error names only the task, in terminal colours; the encoder's error names the model.
    assert str(stopped.value).startswith(f"ingestion on Ray stopped: {model} produced NaN or infinite values")
    assert "\x1b[" not in str(stopped.value)


class DiskFiller(threading.Thread):
    """Fills the store's disk once the writer actor's first write request is under way: it waits for the
    store to count the request's points (done after its space check, before the points land), stops the
    actor, leaves only what the store keeps free, and lets the actor go on. The actor's next request is
    refused for want of space, part way through its group of documents."""

    def __init__(self, store: Path, disk: Path) -> None:
        super().__init__(daemon=True)
        self.count_file = store / edge.COLLECTIONS / "docs" / edge.UNINDEXED_FILE
        self.store, self.disk = store, disk
        self.filler = disk / "filler"
        self.filled = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        before = self.count_file.read_text()
        while not (writers := stage_processes("_WriteStage")) and not self.done.is_set():
            time.sleep(0.05)
        while not self.done.is_set():
            with contextlib.suppress(FileNotFoundError):  # replaced as it is read
                if self.count_file.read_text() != before:
                    break
            time.sleep(0.001)
        else:
            return
        writers[0].suspend()
        try:
            crashes.fill(self.disk, edge.space_needed(self.store))
        finally:
            writers[0].resume()
        self.filled.set()


def test_a_full_disk_stops_a_ray_job_with_no_half_written_document(local_ray, tmp_path, tiny_gte_dir):
    corpus = tmp_path / "corpus"
    crashes.write_corpus(corpus / "a", documents=5, parts=10)
    # 1,200 sections: one group of documents for the writer actor, upserted in five requests.
    crashes.write_corpus(corpus / "b", documents=2, parts=600)
    crashes.ingest(tmp_path / "clean", corpus, tiny_gte_dir)
    clean = crashes.points(tmp_path / "clean")

    with crashes.tmpfs(tmp_path / "disk", size_mb=640) as disk:
        store = disk / "store"
        assert crashes.ingest(store, corpus / "a", tiny_gte_dir).ok
        filler = DiskFiller(store, disk)
        filler.start()
        kit = ragkit.open("docs", store=store, model=str(tiny_gte_dir), device="cpu")
        try:
            with kit, pytest.raises(ragkit.StoreError) as stopped:  # the error of one machine's job
                kit.ingest([corpus], ray=True, max_tokens=crashes.MAX_TOKENS)
        finally:
            filler.done.set()
            filler.join()
        assert filler.filled.is_set(), "the disk should fill while the writer writes"
        assert str(stopped.value).startswith("writing to collection 'docs' failed: cannot write ")
        assert f"the local store {store}: no space left on device" in str(stopped.value)

        found = crashes.documents(store)  # the store opens
        assert len(found) == 5, "a's documents stay, b's half-written group is removed"
        for doc_id, (count, hashes, section_count) in found.items():
            assert count == section_count and len(hashes) == 1, f"{doc_id} is half-written"

        filler.filler.unlink()
        report = crashes.ingest(store, corpus, tiny_gte_dir)
        assert report.ok and report.documents_unchanged == 5 and report.documents_ingested == 2
        assert crashes.points(store) == clean


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and a second node on this machine, one CPU each; both stopped after the test."""
    port = _free_port()
    # `ray start` turns token authentication on; every process of the cluster and each driver uses it.
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a test cluster has nothing to drain
    }
    ray_cli = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--block",
        "--num-cpus=1",
        "--node-ip-address=127.0.0.1",
    ]
    # Its own temporary folder (short: it holds sockets), so this machine's default cluster address,
    # which `ray.init()` and `ray.init("auto")` read, is left alone.
    temp = tempfile.mkdtemp(prefix="ragkit-ray-", dir="/tmp")
    head = [*ray_cli, "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"]
    nodes = [subprocess.Popen(head, env=env)]
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_nodes(address, 1, env)
        nodes.append(subprocess.Popen([*ray_cli, f"--address={address}"], env=env))
        _wait_for_nodes(address, 2, env)
        yield address, env
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes on the way out
            node.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, count: int, env: dict[str, str]) -> None:
    probe = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(len(ray.nodes()))"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
        if run.returncode == 0 and run.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} nodes")


def test_the_cli_job_on_a_two_node_cluster_matches_one_machine(two_node_cluster, tmp_path, minilm_path):
    address, env = two_node_cluster
    docs = mixed_corpus(tmp_path)
    expected = ingest(tmp_path / "one-machine", minilm_path, [docs], workers=0)
    run = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "ingest", str(docs), "--ray", "auto", "--collection", "docs",
         "--store", str(tmp_path / "cluster"), "--model", str(minilm_path), "--device", "cpu",
         "--max-tokens", "128", "--metadata", "team=docs", "--report", str(tmp_path / "report.json")],
        capture_output=True, text=True, env=env | {"RAY_ADDRESS": address},
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # 1: empty.txt failed, as on one machine
    written = json.loads((tmp_path / "report.json").read_text())
    assert {field: written[field] for field in REPORT_FIELDS} == expected
    assert f"{expected['documents_seen']} documents: 7 ingested" in run.stdout
    assert point_set(tmp_path / "cluster") == point_set(tmp_path / "one-machine")


def test_without_ray_the_flag_is_an_error_naming_the_extra(tmp_path, monkeypatch, capsys):
    from ragkit.cli import main

    docs = write_corpus(tmp_path / "docs")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    assert main(["ingest", str(docs), "--ray", "--store", str(tmp_path / "s"), "--model", "minilm"]) == 2
    assert "pip install 'ragkit[ray]'" in capsys.readouterr().err


def test_a_ray_address_is_auto_or_a_ray_url_and_a_ray_url_needs_a_server_store(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    with ragkit.open("docs", store=tmp_path / "s", model="minilm") as kit:
        with pytest.raises(ragkit.InputError, match="'auto' or a ray:// URL"):
            kit.ingest(docs, ray="localhost:6379")
        with pytest.raises(ragkit.InputError, match="Qdrant server"):
            kit.ingest(docs, ray="ray://head:10001")
        assert kit.store.collections() == []  # the store was handed back, and nothing was written


def test_a_job_error_is_raised_even_when_the_store_cannot_be_opened_again_after_it(tmp_path):
    """The store folder is moved away under an open kit, and a file put in its place; the job then fails
    (a bad address), and reopening the folder fails too. The job's error is the one raised, with the
    reopen's failure as a note, not replaced by it."""
    docs = write_corpus(tmp_path / "docs")
    store = tmp_path / "s"
    with ragkit.open("docs", store=store, model="minilm") as kit:
        store.rename(tmp_path / "moved")
        store.write_text("not a store")
        with pytest.raises(ragkit.InputError, match="'auto' or a ray:// URL") as stopped:
            kit.ingest(docs, ray="localhost:6379")
        (note,) = stopped.value.__notes__
        assert note.startswith("and afterwards the store could not be opened again: ")
        assert str(store) in note


def test_a_report_that_cannot_be_written_is_refused_before_ray_starts(tmp_path):
    docs = write_corpus(tmp_path / "docs")
    connected = ray.is_initialized()  # by the module's local Ray, where an earlier test started it
    with ragkit.open("docs", store=tmp_path / "s", model="minilm") as kit:
        with pytest.raises(ragkit.InputError, match=f"cannot write the report to {tmp_path}: Is a directory"):
            kit.ingest(docs, ray=True, report=tmp_path)
        assert ray.is_initialized() == connected and kit.store.collections() == []
