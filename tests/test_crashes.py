"""Crashes and a full disk: real `ragkit serve` and `ragkit ingest` processes killed with SIGKILL at
chosen moments, and a store on a tmpfs that runs out of space. After each, the store opens and a re-run
ends with exactly the points of a clean run: the same ids and the same payloads."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import ragkit
from ingest.report import IngestReport
from ragkit.server import KeyRing, ServerConfig, create_app
from ragkit.store import Store, edge
from tests.serving import ADMIN_KEY, running

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CLI = [sys.executable, "-m", "ragkit.cli"]
SEED = 20261201
MAX_TOKENS = 256  # sections as the packaged MiniLM cuts them, whichever model embeds them


def write_corpus(folder: Path, documents: int, parts: int, version: int = 1) -> Path:
    """Short markdown sections, cheap to embed; `version` changes every section's text."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(documents):
        sections = "\n\n".join(
            f"## Part {j}\n\n"
            + " ".join(
                f"document {i} part {j} sentence {k} about item {i * j + k} v{version}." for k in range(7)
            )
            for j in range(parts)
        )
        (folder / f"doc{i:02}.md").write_text(f"# Document {i}\n\n{sections}\n")
    return folder


def points(store: Path, collection: str = "docs") -> dict[str, str]:
    """id -> digest of the whole payload, for every point of the (closed) store."""
    with Store.open(path=store) as opened:
        return {
            pid: hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            for pid, payload in opened.scroll_payloads(
                collection,
                ["text", "doc_id", "source", "title", "breadcrumb", "section_index", "section_count",
                 "doc_hash", "tokens", "page_start", "page_end", "filename"],
            )
        }  # fmt: skip


def documents(store: Path, collection: str = "docs") -> dict[str, tuple[int, set[str], int]]:
    """doc_id -> (points, distinct doc hashes, recorded section_count)."""
    found: dict[str, tuple[int, set[str], int]] = {}
    with Store.open(path=store) as opened:
        for _, p in opened.scroll_payloads(collection, ["doc_id", "doc_hash", "section_count"]):
            count, hashes, _ = found.get(p["doc_id"], (0, set(), 0))
            found[p["doc_id"]] = (count + 1, hashes | {p["doc_hash"]}, p["section_count"])
    return found


def ingest(store: Path, corpus: Path, model: Path) -> IngestReport:
    with ragkit.open("docs", store=store, model=str(model), device="cpu") as kit:
        return kit.ingest([corpus], workers=0, max_tokens=MAX_TOKENS)


def ingest_command(store: Path, corpus: Path, model: Path) -> list[str]:
    """The same job as `ingest`, as a `ragkit -v ingest` process (the store logs each batch it writes)."""
    return [*CLI, "-v", "ingest", str(corpus), "--collection", "docs", "--store", str(store), "--model",
            str(model), "--device", "cpu", "--workers", "0", "--max-tokens", str(MAX_TOKENS)]  # fmt: skip


# --- ragkit serve ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`ragkit -v serve` as its own process on a loopback port, with an API key; its log is read by a
    thread, so a test can wait for a line (the store logs each batch it writes)."""

    def __init__(self, store: Path, work: Path) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [*CLI, "-v", "serve", "--store", str(store), "--work-dir", str(work), "--collection", "docs",
             "--model", "minilm", "--device", "cpu", "--port", self.base.rsplit(":", 1)[1]],
            env=os.environ | {"RAGKIT_API_KEY": ADMIN_KEY},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.batch_written = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if "upserted a batch" in line:
                self.batch_written.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None, "ragkit serve exited while starting"
            try:
                if httpx.get(f"{self.base}/readyz", timeout=60).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ragkit serve did not become ready in time"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@contextmanager
def serve_process(store: Path, work: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(store, work)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def upload(base: str, path: Path) -> str:
    with path.open("rb") as file:
        response = httpx.post(
            f"{base}/v1/ingest", files={"file": (path.name, file)}, headers=ADMIN, timeout=120
        )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def job_status(base: str, job_id: str) -> dict:
    return httpx.get(f"{base}/v1/jobs/{job_id}", headers=ADMIN, timeout=60).json()


def finished(base: str, job_id: str) -> dict:
    deadline = time.monotonic() + 300
    while (job := job_status(base, job_id))["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.2)
    return job


def test_serve_killed_mid_ingestion_restarts_clean_and_a_reupload_converges(tmp_path):
    work = tmp_path / "work"
    document = tmp_path / "manual.md"  # 520 sections: seconds of embedding, batches of 256, 256 and 8
    write_corpus(tmp_path / "parts", documents=1, parts=520)
    shutil.move(tmp_path / "parts" / "doc00.md", document)

    # The clean result: one upload into a fresh store, through the same work folder (the stored path).
    config = ServerConfig(
        collection="docs",
        store=str(tmp_path / "clean"),
        model="minilm",
        device="cpu",
        keys=KeyRing.load(ADMIN_KEY),
        work_dir=work,
    )
    with running(create_app(config)) as base:
        assert finished(base, upload(base, document))["status"] == "succeeded"
    clean = points(tmp_path / "clean")
    assert len(clean) == 520

    store = tmp_path / "killed"
    with serve_process(store, work) as server:
        upload(server.base, document)
        # Only a running job writes batches; it writes the second of its three batches now.
        assert server.batch_written.wait(timeout=300), "no batch was written"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    assert any((work / "documents").iterdir()), "the document being ingested stays behind"
    (work / "incoming" / "0123.part").write_bytes(b"half an upload")
    partial = points(store)
    assert 0 < len(partial) < len(clean), "the kill should land mid-document"

    with serve_process(store, work) as server:
        base = server.base
        assert not any((work / "incoming").iterdir()) and not any((work / "documents").iterdir())
        job = finished(base, upload(base, document))
        assert job["status"] == "succeeded", job
        assert job["report"]["documents_ingested"] == 1
    assert points(store) == clean


# --- ragkit ingest -----------------------------------------------------------------------------------


def kill_ingest(store: Path, corpus: Path, model: Path, moment: tuple[str, int], delay: float) -> str:
    """Run `ragkit -v ingest` and SIGKILL it `delay` seconds after its `moment`-th log line of a kind:
    ("batch", n) after the n-th batch written, ("index", 1) once the index build began. Returns the log."""
    job = subprocess.Popen(
        ingest_command(store, corpus, model), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert job.stderr is not None
    marker = {"batch": "upserted a batch", "index": "building the index"}[moment[0]]
    seen = 0
    log = []
    for line in job.stderr:
        log.append(line)
        seen += marker in line
        if seen == moment[1]:
            time.sleep(delay)
            break
    job.send_signal(signal.SIGKILL)
    log.extend(job.stderr)
    job.wait()
    assert job.returncode == -signal.SIGKILL, f"the job ended before {moment}:\n{''.join(log)}"
    return "".join(log)


def test_ingest_killed_at_seeded_moments_then_rerun_equals_a_clean_run(tmp_path, tiny_gte_dir):
    # A tiny gte checkpoint embeds, so that the job's time goes to what is killed. 40 documents of 15 sections, all changed since the last run: 600 new points in three batches,
    # 600 stale ones deleted, then an index build that has real work (vacuuming the deleted points).
    before = tmp_path / "before"
    ingest(before, write_corpus(tmp_path / "corpus", documents=40, parts=15, version=1), tiny_gte_dir)
    corpus = write_corpus(tmp_path / "corpus", documents=40, parts=15, version=2)
    clean_store = tmp_path / "clean"
    shutil.copytree(before, clean_store)
    assert ingest(clean_store, corpus, tiny_gte_dir).index_seconds > 0
    clean = points(clean_store)

    rng = random.Random(SEED)
    # After the first or second of three batches (the third is followed at once by the deletions, and
    # a kill there may land on the finished point set), and inside the index build.
    moments = [("batch", rng.randint(1, 2)), ("index", 1)]
    for attempt, moment in enumerate(moments):
        store = tmp_path / f"killed-{attempt}"
        shutil.copytree(before, store)
        log = kill_ingest(store, corpus, tiny_gte_dir, moment, delay=rng.uniform(0, 0.05))
        if moment[0] == "index":
            assert "(index build" not in log, "the kill should land inside the index build"
        killed = points(store)  # the store opens after the kill
        assert killed != clean or moment[0] != "batch", f"the kill at {moment} should land mid-run"

        report = ingest(store, corpus, tiny_gte_dir)
        assert report.ok and points(store) == clean, moment


# --- a full disk -------------------------------------------------------------------------------------


@contextmanager
def tmpfs(folder: Path, size_mb: int) -> Iterator[Path]:
    """A small file system of its own (needs root); the test is skipped, saying why, where it cannot."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(reason=f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave_bytes))
    return filler


def test_a_full_disk_ends_the_job_with_a_clear_error_and_no_half_written_document(tmp_path, tiny_gte_dir):
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "a", documents=5, parts=10)
    # 480 sections, one embedding group written in two batches: the second (224 points) takes long enough
    # to write that the disk is full before it lands (with 44 points, it sometimes landed first).
    write_corpus(corpus / "b", documents=20, parts=24)
    ingest(tmp_path / "clean", corpus, tiny_gte_dir)
    clean = points(tmp_path / "clean")

    # Edge's sparse memory-mapped files (WAL segments, vector chunks, payload indexes) may fill ~170 MiB
    # more than the few MiB they take after the first job; the store keeps that free, 64 MiB besides,
    # and for an index build a copy of the shard, its sparse files as large again, and twice its segments.
    with tmpfs(tmp_path / "disk", size_mb=640) as disk:
        store = disk / "store"
        assert ingest(store, corpus / "a", tiny_gte_dir).ok
        filler = fill(disk, edge.space_needed(store) + 2 * 2**20)  # room for the first batch of b
        job = subprocess.Popen(
            ingest_command(store, corpus, tiny_gte_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert job.stderr is not None
        log = []
        for line in job.stderr:
            log.append(line)
            if "upserted a batch" in line:  # then the disk fills up, as if by another program
                job.send_signal(signal.SIGSTOP)
                with filler.open("ab") as more:
                    more.write(b"\0" * (shutil.disk_usage(disk).free - edge.space_needed(store)))
                job.send_signal(signal.SIGCONT)
                break
        log.extend(job.stderr)
        assert job.wait() == 2, f"the job should end with an error, not a crash:\n{''.join(log)}"
        assert f"the local store {store}: no space left on device" in "".join(log)

        found = documents(store)  # the store opens
        assert len(found) == 5, "a's documents stay, b's half-written group is removed"
        for doc_id, (count, hashes, section_count) in found.items():
            assert count == section_count and len(hashes) == 1, f"{doc_id} is half-written"

        filler.unlink()
        report = ingest(store, corpus, tiny_gte_dir)
        assert report.ok and report.documents_unchanged == 5 and report.documents_ingested == 20
        assert points(store) == clean
