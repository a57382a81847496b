"""The HTTP service run for real in tests: uvicorn on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

import ragkit
from ragkit.server import KeyRing, ServerConfig, create_app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ADMIN_KEY = "admin-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"  # may use collection "other" only


def ingest_samples(store: Path, collection: str) -> None:
    """The sample folder, ingested the way a user would, before the server opens the store."""
    with ragkit.open(collection, store=store, model="minilm", device="cpu") as kit:
        report = kit.ingest([SAMPLES], workers=0)
    assert report.ok and report.documents_ingested == 3, report.summary()


def write_keys(folder: Path) -> Path:
    keys = folder / "keys.json"
    keys.write_text(f'{{"{ADMIN_KEY}": "*", "{OTHER_KEY}": ["other"]}}', encoding="utf-8")
    return keys


@contextmanager
def running(app: object, *, ready_timeout: float = 180) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL once /readyz says the model is loaded."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            assert thread.is_alive(), "the server thread died while starting"
            if server.started and httpx.get(f"{base}/readyz").status_code == 200:
                break
            assert time.monotonic() < deadline, "the server did not become ready in time"
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


@contextmanager
def serving_samples(root: Path, *, restart: bool = False, **config: object) -> Iterator[str]:
    """The samples in collection "docs", served with the test keys; yields the base URL. `restart` serves
    the store that an earlier call left under `root`."""
    if not restart:
        ingest_samples(root / "store", "docs")
    app = create_app(
        ServerConfig(
            collection="docs",
            store=str(root / "store"),
            model="minilm",
            device="cpu",
            keys=KeyRing.load(keys_file=write_keys(root)),
            work_dir=root / "work",
            **config,
        )
    )
    with running(app) as url:
        yield url
