"""Which files a job covers, and the identity and fingerprint of each.

A document's id is derived from its absolute path (moving a file makes it a new document); its hash
covers the bytes and everything else that changes its points, so "same hash" means "nothing to do".
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.parse import SUPPORTED_SUFFIXES

# Bump when parsing or sectioning changes what a file turns into, so existing collections re-ingest.
PIPELINE_VERSION = 4
_NAMESPACE = uuid.UUID("6c1f3e0a-5d0e-4c55-9a56-2f1b0c7d9e11")
NOT_UTF8 = "the path is not valid UTF-8, and a collection stores it as text: rename the file to ingest it"


@dataclass
class Discovery:
    """What a job found under its roots. `failed` and `skipped` hold (path, cause): a root or folder
    that could not be listed fails; a link to a folder, and an entry that is not a regular file (a
    FIFO, a socket, a broken link), is skipped."""

    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # Missing roots and folders not listed: what is under them is unknown, so pruning keeps it.
    unlisted: list[Path] = field(default_factory=list)


def discover(roots: Iterable[Path]) -> Discovery:
    """Supported files under the roots, in a stable order. Hidden files and folders inside a folder are
    left out; a hidden file named as a root is not, as it was asked for by name."""
    found = Discovery()
    seen: set[Path] = set()
    for root in roots:
        root = root.expanduser().resolve()
        try:
            mode = root.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            found.missing.append(root)
            found.unlisted.append(root)  # gone, or only not mounted: pruning cannot tell
            continue
        except OSError as exc:
            _cannot_list(found, root, f"cannot read: {exc.strerror or exc}")
            continue
        if stat.S_ISREG(mode):
            candidates = [root]
        elif stat.S_ISDIR(mode):
            candidates = sorted(_walk(root, found))
        else:
            _cannot_list(found, root, f"not a regular file or a folder ({_kind(mode)})")
            continue
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                found.unsupported.append(path)
            elif not _is_text(path):
                found.failed.append((path, NOT_UTF8))
            else:
                found.files.append(path)
    found.failed = sorted(set(found.failed))  # overlapping roots meet the same folder twice
    found.skipped = sorted(set(found.skipped))
    return found


def _walk(root: Path, found: Discovery) -> Iterator[Path]:
    """The files under a folder, hidden entries left out. A folder that cannot be listed is a failure
    naming it, not an empty folder (pathlib's `rglob` passes over it in silence, and pruning would then
    delete its documents). A link to a folder is skipped, and its contents kept from pruning: followed,
    it could lead out of the root, or round in a loop."""

    def cannot_list(error: OSError) -> None:
        _cannot_list(found, Path(error.filename), f"cannot list the folder: {error.strerror or error}")

    for folder, folders, names in os.walk(root, onerror=cannot_list):
        here = Path(folder)
        folders[:] = [name for name in folders if not name.startswith(".")]
        for link in [here / name for name in folders if (here / name).is_symlink()]:
            folders.remove(link.name)
            found.skipped.append((link, "a link to a folder, not followed: name it as a path of its own"))
            found.unlisted.append(link)
        for name in names:
            if not name.startswith(".") and _is_file(here / name, found):
                yield here / name


def _is_file(path: Path, found: Discovery) -> bool:
    """Whether a folder's entry is a file to consider; one that is not, and is not gone, is skipped. A
    file whose status cannot be read counts as a file: reading it fails, and the report says why."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            found.skipped.append((path, "a broken symbolic link"))
        return False
    except OSError:
        return True
    if not stat.S_ISREG(mode):
        found.skipped.append((path, f"not a regular file ({_kind(mode)})"))
    return stat.S_ISREG(mode)


def _is_text(path: Path) -> bool:
    """Whether the path is text. A name that is not UTF-8 (an old archive's Latin-1 names) reaches
    Python as lone surrogates, which neither the document's id nor its stored `source` can hold: it
    is that file's failure, found here, not an encoding error that stops the whole job."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cannot_list(found: Discovery, path: Path, cause: str) -> None:
    found.failed.append((path, cause))
    found.unlisted.append(path)


def _kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "a block device")


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
