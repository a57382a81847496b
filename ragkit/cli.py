"""The `ragkit` command line. Flags default to the RAGKIT_* environment variables (see ragkit.config)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path

from ragkit.config import ENVIRONMENT_VARIABLES
from ragkit.errors import RagkitError
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

Command = Callable[[argparse.Namespace], int]

# Each module adds its sub-command through `register(commands, store_flags)`.
COMMAND_MODULES: tuple[str, ...] = ("ragkit.commands.search", "ragkit.commands.eval", "ragkit.commands.serve")


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", help="collection name (RAGKIT_COLLECTION, default: documents)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store", metavar="DIR", help="embedded Qdrant folder (RAGKIT_STORE, default ./ragkit-store)"
    )
    where.add_argument("--url", help="Qdrant server URL (RAGKIT_QDRANT_URL)")
    parser.add_argument("--api-key", help="Qdrant API key (RAGKIT_QDRANT_API_KEY)")
    parser.add_argument("--model", help="encoder: hub id, directory or alias minilm/gte-large (RAGKIT_MODEL)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N (RAGKIT_DEVICE)")


def open_kit(args: argparse.Namespace):
    """The collection the store flags name; sub-command modules use it too."""
    import ragkit

    return ragkit.open(
        args.collection,
        store=args.store,
        url=args.url,
        api_key=args.api_key,
        model=args.model,
        device=args.device,
    )


def _metadata(pairs: Sequence[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RagkitError(f"--metadata {pair!r}: expected KEY=VALUE")
        metadata[key] = value
    return metadata


def _ingest(args: argparse.Namespace) -> int:
    with open_kit(args) as kit:
        report = kit.ingest(
            args.paths,
            max_tokens=args.max_tokens,
            prune=args.prune,
            workers=args.workers,
            metadata=_metadata(args.metadata),
            progress=True,
            report=args.report,
        )
    print(report.summary())
    for failure in report.documents_failed:
        print(f"failed: {failure['path']}: {failure['error']}", file=sys.stderr)
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragkit",
        description="Long-document retrieval: whole-section gte embeddings in Qdrant.",
        epilog="environment:\n"
        + "\n".join(f"  {k:<22} {v}" for k, v in (ENVIRONMENT_VARIABLES | LLM_ENVIRONMENT_VARIABLES).items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="parse, section, embed and upsert documents")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    _store_flags(ingest)
    ingest.add_argument("--max-tokens", type=int, help="section size limit (default: the model's limit)")
    ingest.add_argument("--prune", action="store_true", help="delete documents whose files are gone")
    ingest.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    ingest.add_argument(
        "--workers",
        type=int,
        help="parsing processes (default: none for small jobs or a small CPU-only machine, else up to 4)",
    )
    ingest.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="stored on every section"
    )
    ingest.set_defaults(run=_ingest)
    for module in COMMAND_MODULES:
        import_module(module).register(commands, _store_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except RagkitError as exc:
        print(f"ragkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
