"""`ragkit ingest`: bring a collection in line with files and folders (see `ingest.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragkit.cli import collection_flags, collection_options, count_flag, open_kit
from ragkit.errors import RagkitError


def register(commands: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    from ingest.isolation import DEFAULT_PARSE_TIMEOUT  # light: the parsers load in child processes

    ingest = commands.add_parser("ingest", help="parse, section, embed and upsert documents")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    store_flags(ingest)
    ingest.add_argument("--max-tokens", type=int, help="section size limit (default: the model's limit)")
    ingest.add_argument("--prune", action="store_true", help="delete documents whose files are gone")
    ingest.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    ingest.add_argument(
        "--workers",
        type=count_flag("processes", 0),  # --ray needs >= 1, checked by the job
        help="parsing processes, 0 and 1 both meaning one (default: one for small jobs or a small CPU-only "
        "machine, else up to 4); "
        "with --ray, parsing tasks at once (default: as the cluster's CPUs allow)",
    )
    ingest.add_argument(
        "--ray",
        nargs="?",
        const=True,
        metavar="ADDRESS",
        help="run on Ray Data (needs ragkit[ray]): a local Ray, or the cluster at ADDRESS (auto, ray://HOST:PORT)",
    )
    ingest.add_argument(
        "--parse-timeout",
        type=_seconds,
        default=DEFAULT_PARSE_TIMEOUT,
        metavar="SECONDS",
        help="time limit per document's parse; a parse over it is killed and the document fails "
        f"(default {DEFAULT_PARSE_TIMEOUT:g}; 0: no limit)",
    )
    ingest.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="stored on every section"
    )
    collection_flags(ingest)
    ingest.set_defaults(run=_run)


def _seconds(text: str) -> float | None:
    """--parse-timeout: a positive number of seconds, or 0 for no limit."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return seconds or None


def _metadata(pairs: Sequence[str]) -> dict[str, str]:
    """--metadata KEY=VALUE, repeated; a key given twice is refused, as either value may be the one
    meant (the second one silently won)."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RagkitError(f"--metadata {pair!r}: expected KEY=VALUE")
        if key in metadata and metadata[key] != value:
            raise RagkitError(f"--metadata {key!r} is given twice, as {metadata[key]!r} and {value!r}")
        metadata[key] = value
    return metadata


def _run(args: argparse.Namespace) -> int:
    with open_kit(args) as kit:
        report = kit.ingest(
            args.paths,
            max_tokens=args.max_tokens,
            prune=args.prune,
            workers=args.workers,
            ray=args.ray,
            metadata=_metadata(args.metadata),
            parse_timeout=args.parse_timeout,
            progress=True,
            report=args.report,
            collection_options=collection_options(args),
        )
    print(report.summary())
    for failure in report.documents_failed:
        print(f"failed: {failure['error']}", file=sys.stderr)
    return 0 if report.ok else 1
