"""`ragkit serve`: the HTTP API and the search page over a store's collections."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkit.cli import check_api_key, collection_flags, collection_options
from ragkit.config import env
from ragkit.errors import InputError

log = logging.getLogger("ragkit.server")

SECURITY_HELP = """\
security:
  Clients send 'Authorization: Bearer <key>'. Keys come from RAGKIT_API_KEY (every collection) and
  --keys-file, a JSON object mapping each key to the collections it may use or to "*":
    {"<key for team a>": ["manuals", "contracts"], "<admin key>": "*"}
  Keys are at least 16 characters. Without any key the server only binds a loopback address, unless
  --insecure says that the network in front of it is trusted.
"""


def register(commands: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    serve = commands.add_parser(
        "serve",
        help="HTTP search API and search page",
        description="Serve search, answers, ingestion and metrics over HTTP (OpenAPI docs at /docs).",
        epilog=SECURITY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    store_flags(serve)
    collection_flags(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to bind, 1-65535 (default 8000)")
    serve.add_argument(
        "--keys-file", type=Path, metavar="FILE", help="API keys and their collections (RAGKIT_API_KEYS_FILE)"
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow binding a non-loopback address without API keys"
    )
    serve.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="where uploads are staged (RAGKIT_WORK_DIR, default ./ragkit-work)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=int,
        metavar="N",
        help="largest accepted upload (RAGKIT_MAX_UPLOAD_MB, default 50)",
    )
    serve.add_argument(
        "--index-after",
        type=int,
        metavar="N",
        help="build a collection's index after an upload once N sections have been written or deleted "
        "since its last build (default 20000; counted in the store, across restarts; searches go on during "
        "a build)",
    )
    serve.set_defaults(run=run)


def _port(text: str) -> int:
    """--port: checked by argparse, before the store opens and the model loads; a port past 65535 was
    otherwise an OverflowError traceback from the socket's bind, once all of that was done."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return port


def run(args: argparse.Namespace) -> int:
    """Check the exposure, open the store, then serve until interrupted."""
    from ragkit.server.auth import KeyRing
    from ragkit.server.config import (
        DEFAULT_INDEX_AFTER,
        DEFAULT_MAX_UPLOAD_MB,
        DEFAULT_WORK_DIR,
        ServerConfig,
    )

    check_api_key(args)
    keys_file = args.keys_file or env("RAGKIT_API_KEYS_FILE")
    keys = KeyRing.load(env("RAGKIT_API_KEY"), Path(keys_file) if keys_file else None)
    check_exposure(args.host, keys_enabled=keys.enabled, insecure=args.insecure)
    check_bindable(args.host, args.port)
    max_upload_mb = _upload_limit(args.max_upload_mb, DEFAULT_MAX_UPLOAD_MB)
    config = ServerConfig(
        collection=args.collection,
        store=args.store,
        url=args.url,
        qdrant_api_key=args.api_key,
        model=args.model,
        device=args.device,
        keys=keys,
        work_dir=args.work_dir or Path(env("RAGKIT_WORK_DIR") or DEFAULT_WORK_DIR),
        max_upload_bytes=max_upload_mb * 2**20,
        collection_options=collection_options(args),
        index_after=DEFAULT_INDEX_AFTER if args.index_after is None else args.index_after,
    )

    import uvicorn

    from ragkit.server import create_app

    app = create_app(config)
    if not keys.enabled:
        log.warning(
            "API keys are off: anyone who can reach %s:%d can search and ingest", args.host, args.port
        )
    log_level = "debug" if args.verbose else "info"
    uvicorn.run(app, host=args.host, port=args.port, server_header=False, log_level=log_level)
    return 0


def _upload_limit(flag: int | None, default: int) -> int:
    """--max-upload-mb, else RAGKIT_MAX_UPLOAD_MB, else the default: a whole number of MiB, at least 1.

    The variable is read here rather than by argparse, so its bad value is named as the variable's (a
    compose file's typo would otherwise be a traceback), and 0 is refused rather than read as "no limit".
    """
    if flag is not None:
        setting, value = "--max-upload-mb", flag
    else:
        raw = env("RAGKIT_MAX_UPLOAD_MB")
        setting = "RAGKIT_MAX_UPLOAD_MB"
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            raise InputError(
                f"{setting}={raw!r} is not a whole number of MiB (the default is {default})"
            ) from None
    if value < 1:
        raise InputError(f"{setting} must be at least 1 (MiB), got {value}")
    return value


def check_exposure(host: str, *, keys_enabled: bool, insecure: bool) -> None:
    """Refuse to serve beyond this machine without keys, unless the operator says so explicitly."""
    if keys_enabled or insecure or _is_loopback(host):
        return
    raise InputError(
        f"refusing to serve on {host} without API keys: anyone on the network could read and change the "
        "collections. Set RAGKIT_API_KEY or --keys-file, bind 127.0.0.1, or pass --insecure if a trusted "
        "proxy in front does the authentication"
    )


def check_bindable(host: str, port: int) -> None:
    """Resolve --host now, before the store opens and the model loads: uvicorn finds an unknown host only
    when it binds, and then exits with status 3 and "Name or service not known", naming no host."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host!r} does not resolve to an address to bind: {exc}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name could resolve to anything
        return False
