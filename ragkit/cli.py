"""The `ragkit` command line. Flags default to the RAGKIT_* environment variables (see ragkit.config)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from ragkit.config import ENVIRONMENT_VARIABLES
from ragkit.errors import RagkitError
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

# Each module adds its sub-command through `register(commands, store_flags)`.
COMMAND_MODULES: tuple[str, ...] = (
    "ragkit.commands.ingest",
    "ragkit.commands.search",
    "ragkit.commands.eval",
    "ragkit.commands.serve",
)


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
