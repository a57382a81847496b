"""What a server is started with; `ragkit serve` fills it from its flags and the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragkit.errors import InputError
from ragkit.server.auth import KeyRing
from ragkit.store import CollectionOptions

DEFAULT_WORK_DIR = "ragkit-work"
DEFAULT_MAX_UPLOAD_MB = 50
# Unindexed sections are searched exactly, at about 0.12 ms per 1,000 of 384 dimensions and 0.3 ms per
# 1,000 of 1024 here (README, "Engines"); 20,000 cost a gte-large query ~6 ms before their index is built.
# Each build copies the collection's shard, so building after every upload would cost more than it saves.
DEFAULT_INDEX_AFTER = 20_000
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
    # Build a collection's index once uploads have added this many sections since the last build.
    index_after: int = DEFAULT_INDEX_AFTER

    def __post_init__(self) -> None:
        if (
            isinstance(self.index_after, bool)
            or not isinstance(self.index_after, int)
            or self.index_after < 1
        ):
            raise InputError(f"--index-after must be a positive number of sections, got {self.index_after!r}")

    @property
    def max_upload_body(self) -> int:
        return self.max_upload_bytes + _MULTIPART_OVERHEAD
