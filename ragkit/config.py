"""Settings from the environment, in one place, so the CLI, the Python API and the server agree.

Every command-line flag defaults to one of these; `.env.example` (docker/) documents the same names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ragkit.encoder import DEFAULT_MODEL

DEFAULT_STORE = "ragkit-store"


def env(name: str, default: str | None = None) -> str | None:
    """A setting from the environment: unset and blank both mean "not given"."""
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    """ragkit's configuration; read fresh from the environment by `Settings.from_env()`."""

    model: str = DEFAULT_MODEL
    store: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    device: str = "auto"
    collection: str = "documents"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            model=env("RAGKIT_MODEL", DEFAULT_MODEL),
            store=env("RAGKIT_STORE"),
            url=env("RAGKIT_QDRANT_URL"),
            api_key=env("RAGKIT_QDRANT_API_KEY"),
            device=env("RAGKIT_DEVICE", "auto"),
            collection=env("RAGKIT_COLLECTION", "documents"),
        )


ENVIRONMENT_VARIABLES = {
    "RAGKIT_MODEL": f"encoder: hub id, local directory or alias (minilm, gte-large, gte-base); default {DEFAULT_MODEL}",
    "RAGKIT_STORE": f"folder of the embedded Qdrant store; default ./{DEFAULT_STORE}",
    "RAGKIT_QDRANT_URL": "Qdrant server URL; when set, used instead of the embedded store",
    "RAGKIT_QDRANT_API_KEY": "API key for the Qdrant server",
    "RAGKIT_DEVICE": "auto (CUDA when present), cpu, cuda, cuda:1 ...",
    "RAGKIT_COLLECTION": "default collection name; default documents",
    "RAGKIT_API_KEY": "ragkit serve: API key clients send as 'Authorization: Bearer <key>' (all collections)",
    "RAGKIT_API_KEYS_FILE": "ragkit serve: JSON file mapping API keys to the collections they may use",
    "RAGKIT_WORK_DIR": "ragkit serve: folder where uploads are staged; default ./ragkit-work",
    "RAGKIT_MAX_UPLOAD_MB": "ragkit serve: largest accepted upload in MiB; default 50",
}
