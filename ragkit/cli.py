"""The `ragkit` command line. Flags default to the RAGKIT_* environment variables (see ragkit.config)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.config import ENVIRONMENT_VARIABLES, env
from ragkit.encoder import DEFAULT_MODEL
from ragkit.encoder.resolve import ALIASES
from ragkit.errors import InputError, RagkitError
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES
from ragkit.retrieval import DEFAULT_FUSION
from ragkit.store.schema import FUSIONS

if TYPE_CHECKING:
    from ragkit.store import StoreAddress

# Each module adds its sub-command through `register(commands, store_flags)`; `store_flags(parser)` adds
# --collection, --store, --url, --api-key, --model and --device.
COMMAND_MODULES: tuple[str, ...] = (
    "ragkit.commands.ingest",
    "ragkit.commands.search",
    "ragkit.commands.eval",
    "ragkit.commands.serve",
    "ragkit.commands.store",
)


def _store_flags(parser: argparse.ArgumentParser, *, own_collection: bool = False) -> None:
    """Where the collection is and which model reads it. With `own_collection` (ragkit eval, which indexes
    a dataset into a collection of its own) the collection, store and URL come from the flags only, and
    the model from --model or RAGKIT_MODEL, so the help says so instead of promising the environment."""
    if own_collection:
        collection = "collection name (default: named after the dataset, strategy and model)"
        store = "embedded Qdrant folder to keep the index in (default: a temporary one)"
        url = "Qdrant server URL to keep the index in (default: none)"
        model = f"RAGKIT_MODEL, default {DEFAULT_MODEL}"
    else:
        collection = "collection name (RAGKIT_COLLECTION, default: documents)"
        store = "embedded Qdrant folder (RAGKIT_STORE, default ./ragkit-store)"
        url = "Qdrant server URL (RAGKIT_QDRANT_URL)"
        model = f"RAGKIT_MODEL; default: an existing collection's own model, else {DEFAULT_MODEL}"
    parser.add_argument("--collection", metavar="NAME", help=collection)
    location_flags(parser, store=store, url=url)
    parser.add_argument(
        "--model", metavar="MODEL", help=f"encoder: hub id, directory or alias {', '.join(ALIASES)} ({model})"
    )
    parser.add_argument(
        "--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N, mps (RAGKIT_DEVICE, default auto)"
    )


def location_flags(
    parser: argparse.ArgumentParser,
    *,
    store: str = "embedded Qdrant folder (RAGKIT_STORE, default ./ragkit-store)",
    url: str = "Qdrant server URL (RAGKIT_QDRANT_URL)",
) -> None:
    """Which store: --store or --url, and --api-key for a server; for commands that read a store but
    no single collection (`ragkit store list`)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", metavar="DIR", help=store)
    where.add_argument("--url", metavar="URL", help=url)
    parser.add_argument("--api-key", metavar="KEY", help="Qdrant server API key (RAGKIT_QDRANT_API_KEY)")


def collection_flags(parser: argparse.ArgumentParser) -> None:
    """How a collection that the command creates is built (see `ragkit.store.CollectionOptions`)."""
    group = parser.add_argument_group("new collections")
    group.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="FIELD[:TYPE]",
        help="payload index for filtered search (TYPE keyword, integer, float, or tenant: a keyword index "
        "marked is_tenant; default keyword); "
        "doc_id and source are always indexed; repeatable, also added to an existing collection",
    )
    group.add_argument(
        "--quantize",
        choices=("int8",),
        help="int8 scalar quantization of the dense vectors, searched with rescoring (4x less vector memory)",
    )
    group.add_argument(
        "--bm25-language", metavar="LANG", help="stop words and stemmer of BM25 (default english)"
    )
    group.add_argument("--no-stemming", action="store_true", help="BM25 without stemming")
    group.add_argument("--no-stopwords", action="store_true", help="BM25 without stop words")
    group.add_argument("--shards", type=int, metavar="N", help="Qdrant server: shard_number")
    group.add_argument("--replicas", type=int, metavar="N", help="Qdrant server: replication_factor")
    group.add_argument(
        "--write-consistency", type=int, metavar="N", help="Qdrant server: write_consistency_factor"
    )


def collection_options(args: argparse.Namespace):
    """The `CollectionOptions` of `collection_flags`; BM25 settings only when one of their flags is given."""
    from ragkit.store import Bm25Settings, CollectionOptions, parse_index

    bm25 = None
    if args.bm25_language or args.no_stemming or args.no_stopwords:
        bm25 = Bm25Settings(
            language=args.bm25_language or "english",
            stemming=not args.no_stemming,
            stopwords=not args.no_stopwords,
        )
    return CollectionOptions(
        bm25=bm25,
        indexes=dict(parse_index(declared) for declared in args.index),
        quantize=args.quantize,
        shards=args.shards,
        replicas=args.replicas,
        write_consistency=args.write_consistency,
    )


class _Given(argparse.Action):
    """Stores the value as argparse's "store" does, and notes in `args.given` that the flag was typed: a
    command can then tell a flag given with its default value from one left out."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def count_flag(what: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type for a whole number of `what` from `low` (to `high`), refused as the flag: its
    error names the flag the user typed, before any store or model loads."""
    bounds = f">= {low}" if high is None else f"from {low} to {high}"

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what} {bounds}")
        return value

    return count


def fusion_flag(parser: argparse.ArgumentParser, *, help_text: str) -> None:
    """--fusion, noted when typed so that `check_fusion_flag` can refuse it outside hybrid mode."""
    parser.add_argument("--fusion", action=_Given, choices=FUSIONS, default=DEFAULT_FUSION, help=help_text)


def check_fusion_flag(args: argparse.Namespace) -> None:
    """--fusion chooses how hybrid mode fuses its dense and sparse lists; dense and sparse mode search one
    list, so a --fusion typed with them was ignored in silence, hiding a --mode hybrid left out."""
    if "fusion" in getattr(args, "given", ()) and args.mode != "hybrid":
        raise InputError(
            f"--fusion {args.fusion} applies to --mode hybrid only, which fuses a dense and a sparse list; "
            f"--mode {args.mode} searches one list: pass --mode hybrid, or leave --fusion out"
        )


def check_api_key(args: argparse.Namespace, *, url_from_environment: bool = True) -> None:
    """--api-key is a Qdrant server's key: with no server to send it to (an embedded store), it would be
    dropped in silence, hiding a forgotten --url. `url_from_environment`: RAGKIT_QDRANT_URL names one."""
    server = args.url or (url_from_environment and not args.store and env("RAGKIT_QDRANT_URL"))
    if args.api_key and not server:
        raise InputError(
            "--api-key is the key of a Qdrant server, and no server is named: pass --url URL"
            + (" (or set RAGKIT_QDRANT_URL)" if url_from_environment else "")
            + ", or leave --api-key out for an embedded store"
        )


def open_kit(args: argparse.Namespace, *, existing: bool = False):
    """The collection the store flags name; sub-command modules use it too. `existing`: for a command
    that only reads or maintains a store, whose --store folder must exist (see `existing_store`)."""
    import ragkit

    if existing:
        existing_store(args)
    check_api_key(args)

    return ragkit.open(
        args.collection,
        store=args.store,
        url=args.url,
        api_key=args.api_key,
        model=args.model,
        device=args.device,
    )


def existing_store(args: argparse.Namespace) -> StoreAddress:
    """The `StoreAddress` that `location_flags` name, whose folder must exist: a command that only reads
    or maintains a store would otherwise create an empty folder at a mistyped --store and report it empty,
    or report its collection missing."""
    from ragkit.kit import store_address

    check_api_key(args)
    address = store_address(store=args.store, url=args.url, api_key=args.api_key)
    if address.path is not None and (problem := not_a_folder(address.path)):
        raise InputError(f"store folder {address.path}: {problem}; name an existing store with --store")
    return address


def not_a_folder(path: Path) -> str | None:
    """Why `path` names no folder ("<resolved> does not exist" or "... is a file, not a folder"), or None
    if it is one: the resolved path is in the reason, since a relative typo is the usual cause."""
    resolved = path.expanduser().resolve()
    if resolved.is_dir():
        return None
    return f"{resolved} {'is a file, not a folder' if resolved.exists() else 'does not exist'}"


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
