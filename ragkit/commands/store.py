"""`ragkit store`: maintenance of an embedded store folder.

ragkit store convert DIR                       a folder of an earlier ragkit -> the Qdrant Edge layout
ragkit store index --store DIR --collection C  build the vector index of points written meanwhile
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkit.cli import open_kit
from ragkit.errors import InputError


def register(commands: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    store = commands.add_parser("store", help="convert or index an embedded store folder")
    verbs = store.add_subparsers(dest="verb", required=True)
    convert = verbs.add_parser(
        "convert",
        help="convert a store folder written by an earlier ragkit (qdrant-client local mode)",
        description="Copy every point (ids, vectors, payload; nothing re-embedded) into the Qdrant Edge "
        "layout, add the BM25 vectors, and keep the old folder beside it as DIR.qdrant-local-backup.",
    )
    convert.add_argument("folder", type=Path, metavar="DIR")
    convert.set_defaults(run=_convert)
    index = verbs.add_parser(
        "index",
        help="build the vector index (jobs do it after their last write; searches go on meanwhile)",
    )
    store_flags(index)
    index.set_defaults(run=_index)


def _convert(args: argparse.Namespace) -> int:
    from ingest.sections import embedded_text
    from ragkit.store.convert import convert_legacy

    _check_folder(args.folder)
    result = convert_legacy(
        args.folder,
        embedded_text=lambda payload: embedded_text(payload.get("breadcrumb") or [], payload.get("text", "")),
    )
    print(result.summary())
    return 0


def _check_folder(folder: Path) -> None:
    """DIR must be a folder, or the place of one whose conversion stopped between its two renames (its
    copy then waits beside it, to be moved in): a missing DIR, a mistyped path most often, was otherwise
    reported as "not a store folder of an earlier ragkit", as if it were a folder of the wrong kind."""
    from ragkit.store.convert import WORK_SUFFIX

    resolved = folder.expanduser().resolve()
    if resolved.is_dir() or resolved.with_name(resolved.name + WORK_SUFFIX).is_dir():
        return
    cause = "is a file, not a folder" if resolved.exists() else "does not exist"
    raise InputError(f"store convert {folder}: {resolved} {cause}; name the store folder to convert")


def _index(args: argparse.Namespace) -> int:
    with open_kit(args) as kit:
        seconds = kit.store.build_index(kit.collection)
    print(f"collection {kit.collection!r}: index built in {seconds:.1f}s")
    return 0
