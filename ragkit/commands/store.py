"""`ragkit store`: maintenance of an embedded store folder.

ragkit store convert DIR                       a folder of an earlier ragkit -> the Qdrant Edge layout
ragkit store index --store DIR --collection C  build the vector index of points written meanwhile
ragkit store list [--store DIR | --url URL]    every collection: points, model, BM25, indexes, quantization
ragkit store delete NAME [--store DIR | --url URL]   a collection whole, to build it anew
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkit.cli import existing_store, location_flags, not_a_folder, open_kit
from ragkit.errors import InputError, StoreError
from ragkit.store import SchemaError, Store


def register(commands: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    store = commands.add_parser("store", help="convert, index or list the collections of a store")
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
    listing = verbs.add_parser(
        "list",
        help="list a store's collections: points, unindexed points, model, BM25, indexes, quantization",
    )
    location_flags(listing)
    listing.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    listing.set_defaults(run=_list)
    delete = verbs.add_parser(
        "delete",
        help="delete a collection whole: its points, indexes and recorded settings",
        description="Delete one collection, named in full (never taken from RAGKIT_COLLECTION): the way to "
        "build it again with other BM25, quantization or model settings, which a collection keeps.",
    )
    delete.add_argument("name", metavar="NAME", help="the collection to delete")
    location_flags(delete)
    delete.set_defaults(run=_delete)


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
    problem = not_a_folder(folder)
    if problem and not resolved.with_name(resolved.name + WORK_SUFFIX).is_dir():
        raise InputError(f"store convert {folder}: {problem}; name the store folder to convert")


def _index(args: argparse.Namespace) -> int:
    with open_kit(args, existing=True) as kit:
        seconds = kit.store.build_index(kit.collection)
    print(f"collection {kit.collection!r}: index built in {seconds:.1f}s")
    return 0


def _list(args: argparse.Namespace) -> int:
    address = existing_store(args)
    with address.open() as store:
        rows = [_describe(store, name, embedded=address.embedded) for name in store.collections()]
        where = store.where
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(where, rows))
    return 0


def _delete(args: argparse.Namespace) -> int:
    with existing_store(args).open() as store:
        try:
            points = f"{store.count(args.name)} points"
        except SchemaError:  # a collection that ragkit cannot read; the delete says if it may go
            points = "unreadable"
        store.delete_collection(args.name)
        print(f"deleted collection {args.name!r} ({points}) from {store.where}")
    return 0


def _describe(store: Store, name: str, *, embedded: bool) -> dict[str, Any]:
    """One collection as `store list` shows it; one that ragkit cannot read (written by another tool, or
    with a damaged schema) is listed with the reason instead of stopping the listing."""
    try:
        schema = store.schema(name).to_json()
        return {
            "name": name,
            "points": store.count(name),
            "unindexed": store.unindexed(name) if embedded else None,
            "model": schema["model"],
            "dim": schema["dim"],
            "bm25": schema["bm25"],
            "indexes": schema["indexes"],
            "quantize": schema["quantize"],
        }
    except StoreError as exc:
        return {"name": name, "error": str(exc)}


def _table(where: str, rows: list[dict[str, Any]]) -> str:
    readable = [row for row in rows if "error" not in row]
    lines = [f"{where}: {len(rows)} collection(s)"]
    if readable:
        header = ("NAME", "POINTS", "UNINDEXED", "MODEL", "DIM", "BM25", "INDEXES", "QUANTIZE")
        cells = [header] + [
            (
                row["name"],
                str(row["points"]),
                "-" if row["unindexed"] is None else str(row["unindexed"]),
                row["model"],
                str(row["dim"]),
                f"{row['bm25']['language']} k={row['bm25']['k']} b={row['bm25']['b']}",
                ",".join(f"{key}:{kind}" for key, kind in row["indexes"].items()),
                row["quantize"] or "-",
            )
            for row in readable
        ]
        widths = [max(len(cell[i]) for cell in cells) for i in range(len(header))]
        lines += [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in cells
        ]
    lines += [f"unreadable {row['name']!r}: {row['error']}" for row in rows if "error" in row]
    return "\n".join(lines)
