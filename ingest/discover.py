"""Which files a job covers, and the identity and fingerprint of each.

A document's id is derived from its absolute path (moving a file makes it a new document); its hash
covers the bytes and everything else that changes its points, so "same hash" means "nothing to do".
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.parse import SUPPORTED_SUFFIXES

# Bump when parsing or sectioning changes what a file turns into, so existing collections re-ingest.
PIPELINE_VERSION = 1
_NAMESPACE = uuid.UUID("6c1f3e0a-5d0e-4c55-9a56-2f1b0c7d9e11")


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)


def discover(roots: Iterable[Path]) -> Discovery:
    """Supported files under the roots, in a stable order; hidden files and folders are left out."""
    found = Discovery()
    seen: set[Path] = set()
    for root in roots:
        root = root.expanduser().resolve()
        if not root.exists():
            found.missing.append(root)
            continue
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            if path in seen or _hidden(path.relative_to(root) if path != root else Path(path.name)):
                continue
            seen.add(path)
            (found.files if path.suffix.lower() in SUPPORTED_SUFFIXES else found.unsupported).append(path)
    return found


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def document_id(path: Path) -> str:
    return str(uuid.uuid5(_NAMESPACE, str(path)))


def document_hash(path: Path, *, max_tokens: int, metadata: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    settings = {"v": PIPELINE_VERSION, "max_tokens": max_tokens, "metadata": metadata}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()
