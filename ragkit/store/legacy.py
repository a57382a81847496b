"""Store folders written by ragkit before schema 2, with qdrant-client's local mode, are recognised here,
so that opening one says how to convert it instead of failing on files it cannot read."""

from __future__ import annotations

from pathlib import Path

LEGACY_META = "meta.json"
CONVERT_COMMAND = "ragkit store convert"


def is_legacy_folder(folder: Path) -> bool:
    """qdrant-client's local mode keeps `meta.json` and `collection/NAME/storage.sqlite` in its folder."""
    return (folder / LEGACY_META).is_file() and (folder / "collection").is_dir()


def legacy_message(folder: Path) -> str:
    return (
        f"the local store {folder} was written by an earlier ragkit (qdrant-client's local mode), which "
        f"this ragkit does not read: convert it once with `{CONVERT_COMMAND} {folder}` (it copies every "
        "point with its vectors and payload, adds the BM25 vectors, and keeps the old folder as a backup)"
    )
