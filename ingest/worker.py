"""A parsing process: the parsers load once, without torch, then documents arrive one at a time.

Parsing needs unstructured and spaCy, never torch or a GPU. spaCy's thinc imports torch and cupy
whenever it finds them, which costs every worker about 2 s of start-up here and, on a GPU machine, a
CUDA probe per process. Marking them absent keeps workers light; loading the parsers before the first
document lets the parent time each document's parse alone.

`serve` is the loop that `ingest.isolation` starts in a child process (a plain `python -c`, not
multiprocessing's spawn, so the parent's main script is never re-imported) and kills when a parse
overstays its time limit.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

_NOT_NEEDED_FOR_PARSING = ("torch", "cupy")
_PARENT_CHECK_S = 1.0


def start_parsing_process() -> None:
    """Block torch and load every parser (also usable as a ProcessPoolExecutor initializer)."""
    for name in _NOT_NEEDED_FOR_PARSING:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import fails"
    import ingest.prepare  # noqa: F401  # every parser, imported here rather than at the first document
    from ingest.parse.nlp import warm_up

    warm_up()


def serve(fd: int, memory_limit: int | None) -> None:
    """Answer ("counter", c) by keeping c, and ("job", job, max_tokens) with ("ok", Prepared) or
    ("error", RagkitError), until the parent closes the connection or goes away."""
    from ingest.isolation import limit_memory

    connection = Connection(fd)
    # Ctrl-C reaches the whole process group; the parent decides what happens to this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(os.getppid())
    limit_memory(memory_limit)
    start_parsing_process()
    from ingest.prepare import prepare, reportable

    connection.send(("ready", os.getpid()))
    counter: Any = None
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "counter":
            counter = message[1]
            continue
        _, job, max_tokens = message
        try:
            answer: tuple[str, Any] = ("ok", prepare(job, counter, max_tokens))
        except MemoryError:
            answer = (
                "error",
                _error(f"{job.path}: parsing ran out of memory (the limit is {memory_limit:,} bytes)"),
            )
        except Exception as exc:  # one bad document is this document's failure, reported to the parent
            answer = ("error", reportable(exc))
        try:
            connection.send(answer)
        except Exception as exc:  # the result would not pickle: still this document's failure
            connection.send(("error", _error(f"{job.path}: cannot return the parse result: {exc}")))


def _error(message: str) -> Exception:
    from ragkit.errors import RagkitError

    return RagkitError(message)


def _exit_with_parent(parent: int) -> None:
    """A parse can hang; if the parent is killed meanwhile, nobody would ever kill this process."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="ragkit-parent-watch", daemon=True).start()
