"""Parsing in child processes that are killed when a document overstays its time limit.

A parser can hang (a pathological PDF), crash its process (a C extension's segfault) or balloon in
memory, and none of that can be interrupted or contained inside the job's own process. So every
document is parsed and sectioned in a child process (`ingest.worker.serve`), one document per child at
a time: the parent gives each document `timeout` seconds, kills the child that overstays, and reports
that document as failed, naming the limit. A child that dies takes only its own document with it; a
fresh child replaces it. Each child's memory is capped (`PARSE_MEMORY_LIMIT`), so a document that
escapes the input caps of `ingest.parse.limits` fails instead of exhausting the machine.

Children are started with `python -c` rather than multiprocessing's spawn, which re-imports the
caller's main script (and cannot, for a script read from stdin). Starting one costs about 2 s, the
parsers' import, so one idle child is kept for the next job of the same process (a server handles
one upload per job); the others end with their job.
"""

from __future__ import annotations

import atexit
import logging
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ragkit.errors import InputError, ParseError, RagkitError
from ragkit.python_child import python_command

if TYPE_CHECKING:  # the parsers themselves load only in the children
    from ingest.prepare import Job, Prepared
    from ragkit.encoder.tokens import TokenCounter

log = logging.getLogger("ragkit.ingest")

DEFAULT_PARSE_TIMEOUT = 120.0
# Address space of one parsing child. The parsers' own footprint is ~1.5 GiB of it (mostly reserved,
# not resident); the input caps keep honest documents far below the rest.
PARSE_MEMORY_LIMIT = 6 * 2**30
_START_TIMEOUT_S = 300.0  # importing the parsers; only a broken installation takes this long
_KEEP_IDLE = 1
_POLL_S = 0.5
_MAX_FAILED_STARTS = 3  # in a row: a broken installation, not a passing accident


def prepare_isolated(
    jobs: list[Job], counter: TokenCounter, max_tokens: int, *, processes: int, timeout: float | None
) -> Iterator[Prepared | tuple[Job, Exception]]:
    """Yield each job's sections or its error, in completion order, parsing in `processes` children.

    `timeout` is each document's limit in seconds (None: no limit). Parsing runs ahead of the caller
    by at most 2 × processes documents, so memory stays flat however slowly the caller consumes.
    """
    if timeout is not None and not timeout > 0:
        raise InputError(
            f"parse_timeout={timeout} must be a positive number of seconds (or None for no limit)"
        )
    if not jobs:
        return
    # Unbounded, so the supervisor never blocks on it and keeps enforcing deadlines while the caller
    # is busy; it holds at most 2 × processes outcomes, because no document is sent out past that.
    outcomes: queue.Queue[Prepared | tuple[Job, Exception] | BaseException | None] = queue.Queue()
    stop = threading.Event()
    supervisor = _Supervisor(jobs, counter, max_tokens, min(max(processes, 1), len(jobs)), timeout)
    thread = threading.Thread(
        target=supervisor.run, args=(outcomes, stop), name="ragkit-parse-supervisor", daemon=True
    )
    thread.start()
    try:
        while (outcome := outcomes.get()) is not None:
            if isinstance(outcome, BaseException):
                raise outcome
            yield outcome
    finally:
        stop.set()
        thread.join()


def limit_memory(limit: int | None) -> None:
    """Cap this process's address space, where the platform can (Linux, most Unixes)."""
    if limit is None:
        return
    with suppress(ImportError, ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))


class _Child:
    """One parsing process and the document it is working on."""

    def __init__(self) -> None:
        ours, theirs = Pipe()
        self.process = subprocess.Popen(
            python_command(
                "from ingest.worker import serve; serve(int(sys.argv[1]), json.loads(sys.argv[2]))",
                str(theirs.fileno()),
                str(PARSE_MEMORY_LIMIT),
            ),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # parsers that print would garble the caller's output
        )
        theirs.close()
        self.connection: Connection = ours
        self.ready = False
        self.started = time.monotonic()
        self.counter: TokenCounter | None = None
        self.job: Job | None = None
        self.sent = self.deadline = float("inf")

    def send(self, job: Job, counter: TokenCounter, max_tokens: int, timeout: float | None) -> None:
        if self.counter is not counter:
            self.connection.send(("counter", counter))
            self.counter = counter
        self.connection.send(("job", job, max_tokens))
        self.job = job
        self.sent = time.monotonic()
        self.deadline = self.sent + timeout if timeout is not None else float("inf")

    def kill(self) -> None:
        with suppress(OSError):
            self.process.kill()
        self.process.wait()
        self.connection.close()

    def death(self) -> str:
        """What ended the process, in words."""
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        code = self.process.returncode
        if code is None:
            return "stopped answering"
        if code < 0:
            with suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class _Idle:
    """The children kept between jobs of this process."""

    lock = threading.Lock()
    children: list[_Child] = []

    @classmethod
    def take(cls) -> _Child | None:
        with cls.lock:
            while cls.children:
                child = cls.children.pop()
                if child.process.poll() is None:
                    return child
        return None

    @classmethod
    def keep(cls, child: _Child) -> bool:
        with cls.lock:
            if len(cls.children) < _KEEP_IDLE and child.process.poll() is None:
                cls.children.append(child)
                return True
        return False

    @classmethod
    def close_all(cls) -> None:
        with cls.lock:
            children, cls.children = cls.children, []
        for child in children:
            child.kill()


atexit.register(_Idle.close_all)


class _Supervisor:
    """Hands documents to children, collects results, and kills what overstays; runs on its own thread."""

    def __init__(
        self, jobs: list[Job], counter: TokenCounter, max_tokens: int, processes: int, timeout: float | None
    ) -> None:
        self._pending = list(reversed(jobs))
        self._counter = counter
        self._max_tokens = max_tokens
        self._processes = processes
        self._timeout = timeout
        self._children: list[_Child] = []
        self._failed_starts = 0

    def run(self, outcomes: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            self._children = [_Idle.take() or _Child() for _ in range(self._processes)]
            while not stop.is_set() and (self._pending or any(child.job for child in self._children)):
                self._assign(room=2 * self._processes - outcomes.qsize())
                for outcome in self._collect():
                    outcomes.put(outcome)
        except BaseException as exc:  # the caller re-raises it
            outcomes.put(
                exc if isinstance(exc, RagkitError) else RagkitError(f"parsing processes failed: {exc!r}")
            )
        finally:
            self._release(clean=not stop.is_set())
            outcomes.put(None)

    def _assign(self, room: int) -> None:
        """Send documents to idle children, while the caller has fewer than `room` outcomes waiting."""
        busy = sum(child.job is not None for child in self._children)
        for index, child in enumerate(self._children):
            if child.ready and child.job is None and self._pending and busy < room:
                busy += 1
                job = self._pending.pop()
                try:
                    child.send(job, self._counter, self._max_tokens, self._timeout)
                except OSError:  # it died while idle: the document goes to its replacement
                    self._pending.append(job)
                    child.job = None
                    child.kill()
                    self._children[index] = _Child()

    def _collect(self) -> Iterator[Prepared | tuple[Job, Exception]]:
        """Wait for the first answer or deadline; yield what finished and what was killed."""
        now = time.monotonic()
        deadlines = [
            child.deadline if child.ready else child.started + _START_TIMEOUT_S for child in self._children
        ]
        # Bounded, so that a caller that stops consuming (an error, Ctrl-C) is noticed within a second.
        wait(
            [child.connection for child in self._children],
            timeout=min(max(0.0, min(deadlines) - now), _POLL_S),
        )
        for index, child in enumerate(self._children):
            if child.connection.poll():
                try:
                    answer = child.connection.recv()
                except (EOFError, OSError):
                    yield from self._replace(index, f"the parsing process {child.death()}")
                    continue
                if answer[0] == "ready":
                    child.ready = True
                    self._failed_starts = 0
                    continue
                job, child.job, child.deadline = child.job, None, float("inf")
                assert job is not None
                log.debug("parsed %s in %.3f s", job.path, time.monotonic() - child.sent)
                yield answer[1] if answer[0] == "ok" else (job, answer[1])
            elif child.job is not None and time.monotonic() >= child.deadline:
                yield from self._replace(
                    index,
                    f"parsing took longer than the limit of {self._timeout:g} s (--parse-timeout); "
                    "the parsing process was killed",
                )
            elif not child.ready and time.monotonic() >= child.started + _START_TIMEOUT_S:
                child.kill()
                raise RagkitError(f"a parsing process did not start within {_START_TIMEOUT_S:g} s")

    def _replace(self, index: int, cause: str) -> Iterator[tuple[Job, Exception]]:
        """Kill a child and start another in its place; the document it held fails with `cause`."""
        child = self._children[index]
        child.kill()
        if not child.ready:
            self._failed_starts += 1
            if self._failed_starts >= _MAX_FAILED_STARTS:
                raise RagkitError(f"parsing processes fail to start ({self._failed_starts} tries): {cause}")
        self._children[index] = _Child()
        if child.job is not None:
            log.warning("%s: %s", child.job.path, cause)
            log.debug("parsed %s in %.3f s", child.job.path, time.monotonic() - child.sent)
            yield child.job, ParseError(f"{child.job.path}: {cause}")

    def _release(self, *, clean: bool) -> None:
        """Keep one healthy idle child for the next job; end the rest (and any still busy)."""
        for child in self._children:
            if not (clean and child.ready and child.job is None and _Idle.keep(child)):
                child.kill()
        self._children = []
