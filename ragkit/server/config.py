"""What a server is started with; `ragkit serve` fills it from its flags and the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragkit.server.auth import KeyRing
from ragkit.store import CollectionOptions

DEFAULT_WORK_DIR = "ragkit-work"
DEFAULT_MAX_UPLOAD_MB = 50
# JSON requests are a query and a few filters; 64 KiB leaves room for long any-of filter lists.
MAX_JSON_BYTES = 64 * 1024
# multipart framing around the file: boundaries and part headers.
_MULTIPART_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """The collection and store to serve (as for `ragkit.open`), who may call, and resource limits."""

    collection: str | None = None
    store: str | None = None
    url: str | None = None
    qdrant_api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    device: str | None = None
    keys: KeyRing = field(default_factory=KeyRing.load, repr=False)
    work_dir: Path = Path(DEFAULT_WORK_DIR)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    # How collections that uploads create are built (indexes, quantization, shards, BM25).
    collection_options: CollectionOptions = field(default_factory=CollectionOptions)

    @property
    def max_upload_body(self) -> int:
        return self.max_upload_bytes + _MULTIPART_OVERHEAD
