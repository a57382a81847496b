"""Sustained load on a real `ragkit serve`: concurrent searches of every mode, uploads and deletes.

Starts the server as its own process on a free loopback port (an API key of its own, a temporary store
and work folder), uploads the sample documents, warms up, then drives it for `--seconds` (or until
`--max-requests`), and stops it. Prints requests served, errors by status, latency percentiles per
kind, and the server's RSS and open file descriptors after warm-up and at the end, with their ratio;
a ratio outside 0.9-1.1 is flagged.

Exit code: 0 when every request was answered without a 5xx or a broken connection and RSS and file
descriptors stayed flat; 1 on any 5xx or transport error; 2 when only the flatness check failed.

    python -m bench.soak                      # 60 s, 8 searching clients, packaged all-MiniLM-L6-v2
    python -m bench.soak --seconds 300 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MODES = ("dense", "sparse", "hybrid")
QUERIES = [
    "how do I prune tomato plants",
    "what is a collection in qdrant",
    "why embed whole sections of long documents",
    "watering schedule for vegetables",
    "payload filters and indexes",
    "context length of the encoder",
]
UPLOAD_NAMES = [f"soak-{i}.md" for i in range(12)]  # re-uploads replace, so the store stays bounded
FLAT = (0.9, 1.1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help="measured load time (default 60)")
    parser.add_argument("--warmup", type=float, default=15, help="unmeasured load first (default 15)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop after this many")
    parser.add_argument("--clients", type=int, default=8, help="concurrent searching clients")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


class Tally:
    """Latency and status of every measured request, by kind."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter[str] = Counter()
        self.failures: list[str] = []
        self.recording = False
        self.count = 0
        self.elapsed = 0.0

    def add(self, kind: str, seconds: float, status: int | str, detail: str = "") -> None:
        if not self.recording:
            return
        self.count += 1
        self.latency[kind].append(seconds)
        self.status[str(status)] += 1
        if (isinstance(status, str) or status >= 500) and len(self.failures) < 10:
            self.failures.append(f"{kind}: {status} {detail[:200]}")


class Soak:
    def __init__(self, base: str, key: str, args: argparse.Namespace) -> None:
        self.base, self.key = base, key
        self.http: httpx.AsyncClient
        self.args = args
        self.random = random.Random(args.seed)
        self.tally = Tally()
        self.uploaded: dict[str, str] = {}  # file name -> doc_id
        self.stop_at = 0.0

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=120
        )

    def running(self) -> bool:
        return time.monotonic() < self.stop_at and self.tally.count < self.args.max_requests

    async def timed(self, kind: str, request) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self.tally.add(kind, time.perf_counter() - started, type(exc).__name__, str(exc))
            return None
        self.tally.add(kind, time.perf_counter() - started, response.status_code, response.text)
        return response

    async def searcher(self) -> None:
        while self.running():
            mode = self.random.choice(MODES)
            body = {
                "query": self.random.choice(QUERIES),
                "top_k": self.random.choice((3, 5, 10)),
                "mode": mode,
            }
            await self.timed(f"search {mode}", self.http.post("/v1/search", json=body))

    async def uploader(self) -> None:
        """One upload at a time, waiting for its job, so the job queue never grows without bound."""
        version = 0
        while self.running():
            version += 1
            name = self.random.choice(UPLOAD_NAMES)
            text = _document(name, version)
            response = await self.timed("upload", self.http.post("/v1/ingest", files={"file": (name, text)}))
            if response is None or response.status_code != 202:
                continue
            job = response.json()
            while job["status"] in ("queued", "running") and time.monotonic() < self.stop_at + 60:
                await asyncio.sleep(0.2)
                polled = await self.timed("job", self.http.get(f"/v1/jobs/{job['id']}"))
                if polled is None or polled.status_code != 200:
                    break
                job = polled.json()
            if job["status"] == "succeeded":
                self.uploaded[name] = job["doc_id"]
            elif job["status"] == "failed" and self.tally.recording:
                self.tally.failures.append(f"job failed: {job.get('error') or job.get('report')}")
                self.tally.status["job failed"] += 1

    async def deleter(self) -> None:
        while self.running():
            await asyncio.sleep(1.0)
            if self.uploaded:
                name = self.random.choice(sorted(self.uploaded))
                doc_id = self.uploaded.pop(name)
                await self.timed("delete", self.http.delete(f"/v1/documents/{doc_id}"))

    async def phase(self, seconds: float, *, recording: bool) -> None:
        """Load for `seconds`, then close every connection, so that the server's open files can be
        compared between phases without the clients' sockets in them."""
        self.tally.recording = recording
        self.stop_at = time.monotonic() + seconds
        started = time.monotonic()
        async with self.client() as self.http:
            workers = [self.searcher() for _ in range(self.args.clients)] + [self.uploader(), self.deleter()]
            await asyncio.gather(*workers)
        self.tally.elapsed = time.monotonic() - started
        await asyncio.sleep(2)

    async def seed(self) -> None:
        """The sample documents, ingested before any load."""
        async with self.client() as http:
            for sample in sorted(SAMPLES.iterdir()):
                job = (
                    await http.post("/v1/ingest", files={"file": (sample.name, sample.read_bytes())})
                ).json()
                while job["status"] in ("queued", "running"):
                    await asyncio.sleep(0.5)
                    job = (await http.get(f"/v1/jobs/{job['id']}")).json()
                if job["status"] != "succeeded":
                    raise SystemExit(f"could not ingest {sample.name}: {job}")


def _document(name: str, version: int) -> str:
    sections = "\n\n".join(
        f"## Part {j}\n\n" + " ".join(f"{name} version {version} part {j} sentence {k}." for k in range(6))
        for j in range(8)
    )
    return f"# {name}\n\n{sections}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path, key: str, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "ragkit.cli", "serve", "--store", str(root / "store"), "--work-dir",
        str(root / "work"), "--collection", "soak", "--model", args.model, "--device", args.device,
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(command, env=os.environ | {"RAGKIT_API_KEY": key}, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if server.poll() is not None:
            raise SystemExit(f"ragkit serve exited while starting; see {root / 'server.log'}")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("ragkit serve did not become ready in 300 s")
        time.sleep(0.2)


def resources(process: psutil.Process) -> tuple[int, int]:
    return process.memory_info().rss, process.num_fds()


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1000:7.1f} ms  p95 {cuts[94] * 1000:7.1f} ms  p99 {cuts[98] * 1000:7.1f} ms"


async def drive(base: str, key: str, args: argparse.Namespace, server: psutil.Process) -> tuple[Tally, list]:
    soak = Soak(base, key, args)
    await soak.seed()
    await soak.phase(args.warmup, recording=False)
    trend = [(0.0, *resources(server))]
    sampler = asyncio.create_task(_sample(server, trend))
    await soak.phase(args.seconds, recording=True)
    sampler.cancel()
    trend.append((soak.tally.elapsed, *resources(server)))
    return soak.tally, trend


async def _sample(server: psutil.Process, trend: list, every: float = 10.0) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(every)
        trend.append((time.monotonic() - started, *resources(server)))


def main() -> int:
    args = parse_args()
    key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="ragkit-soak-") as tmp:
        root = Path(tmp)
        server, base = start_server(root, key, args)
        try:
            tally, trend = asyncio.run(drive(base, key, args, psutil.Process(server.pid)))
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return report(tally, trend, args)


def report(tally: Tally, trend: list, args: argparse.Namespace) -> int:
    elapsed = tally.elapsed
    print(f"ragkit serve soak: {elapsed:.0f} s measured after {args.warmup:.0f} s warm-up, {args.clients} "
          f"searching clients + 1 uploader + 1 deleter, model {args.model} on {args.device}")  # fmt: skip
    print(f"requests served: {tally.count} ({tally.count / elapsed:.1f}/s)")
    print("by status: " + ", ".join(f"{status}: {n}" for status, n in sorted(tally.status.items())))
    server_errors = sum(n for s, n in tally.status.items() if not s.isdigit() or int(s) >= 500)
    print(f"errors (5xx, broken connections, failed jobs): {server_errors}")
    for failure in tally.failures:
        print(f"  {failure}")
    every = [seconds for values in tally.latency.values() for seconds in values]
    print(f"latency, all {len(every):6d}: {percentiles(every)}")
    for kind in sorted(tally.latency):
        print(f"latency, {kind:<14} {len(tally.latency[kind]):6d}: {percentiles(tally.latency[kind])}")
    print(
        "server RSS and open files (after warm-up and at the end with no client connected; between, under load):"
    )
    for at, rss, fds in trend:
        print(f"  t={at:5.0f} s  RSS {rss / 2**20:7.1f} MiB  fds {fds}")
    (_, rss0, fds0), (_, rss1, fds1) = trend[0], trend[-1]
    flat = True
    for name, ratio in (("RSS", rss1 / rss0), ("open files", fds1 / fds0)):
        ok = FLAT[0] <= ratio <= FLAT[1]
        flat &= ok
        print(
            f"{name} end/start: {ratio:.3f}" + ("" if ok else f"  <-- NOT FLAT (outside {FLAT[0]}-{FLAT[1]})")
        )
    if server_errors:
        return 1
    return 0 if flat else 2


if __name__ == "__main__":
    sys.exit(main())
