"""The engine thread: the one thread that runs the encoders and the store calls, batching searches.

One thread because a model runs fastest fed one large batch at a time, and the embedded Qdrant store
serves one call at a time anyway; with a single owner neither needs more locking, and concurrent
queries can be merged. Searches that arrive while the thread is busy wait in the queue and are then
embedded together, one encoder call per collection (natural batching): no timer delays a lone request,
and under load the batches grow by themselves up to MAX_BATCH.

Two lanes: requests (searches and other API calls) go first; ingestion's encoder slices run when no
request waits, and, while requests keep arriving, one slice after each batch of requests. So a long
upload never stalls search for more than one slice, and sustained search never starves an upload
(bench/soak.py: before the alternation, an 8-section upload waited over a minute behind 8 clients).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np

from ragkit.errors import StoreError
from ragkit.retrieval import DEFAULT_MODE, Hit
from ragkit.store.schema import needs_vector

if TYPE_CHECKING:
    from ragkit.encoder import Encoder
    from ragkit.server.collections import Collections
    from ragkit.server.metrics import Metrics

log = logging.getLogger("ragkit.server")

MAX_BATCH = 64


@dataclass
class _Search:
    collection: str
    query: str
    options: dict[str, Any]  # top_k, filters, score_threshold, mode, fusion
    future: Future[list[Hit]]


@dataclass
class _Call:
    function: Callable[[], Any]
    future: Future[Any]


class Engine:
    """Runs submitted work on its own thread; every submit returns a `concurrent.futures.Future`."""

    def __init__(self, collections: Collections, metrics: Metrics) -> None:
        self._collections = collections
        self._metrics = metrics
        self._requests: deque[_Search | _Call] = deque()
        self._background: deque[_Call] = deque()
        self._background_turn = False
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="ragkit-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the task in hand, cancel the queued ones, and end the thread."""
        with self._wake:
            self._stopping = True
            pending = [*self._requests, *self._background]
            self._requests.clear()
            self._background.clear()
            self._wake.notify()
        for task in pending:
            task.future.cancel()
        self._thread.join()

    def search(self, collection: str, query: str, **options: Any) -> Future[list[Hit]]:
        """Best sections of `collection` for `query`; `options` as for `ragkit.retrieval.Retriever.search`."""
        return self._submit(self._requests, _Search(collection, query, options, Future()))

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run `function(*args, **kwargs)` on the engine thread, ahead of any ingestion work."""
        return self._submit(self._requests, _Call(partial(function, *args, **kwargs), Future()))

    def encode(
        self, encoder: Encoder, texts: Sequence[str], *, background: bool, **options: Any
    ) -> Future[tuple[np.ndarray, int]]:
        """`encoder.encode(texts, **options)` on the engine thread: the vectors and the tokens embedded."""
        lane = self._background if background else self._requests
        return self._submit(lane, _Call(partial(self._encode, encoder, texts, **options), Future()))

    def _submit(self, lane: deque[Any], task: _Search | _Call) -> Future[Any]:
        with self._wake:
            if self._stopping:
                raise StoreError("the service is shutting down")
            lane.append(task)
            self._metrics.queue_depth.set(len(self._requests) + len(self._background))
            self._wake.notify()
        return task.future

    def _loop(self) -> None:
        while (tasks := self._next()) is not None:
            try:
                self._run(tasks)
            except Exception as exc:
                # A bug, since each task's own errors are its answer: if it ended this thread, every later
                # request would wait forever. The batch's unanswered tasks get the error instead.
                log.exception("the engine failed on a batch of %d tasks", len(tasks))
                for task in tasks:
                    if not task.future.done():
                        task.future.set_exception(exc)

    def _run(self, tasks: list[_Search | _Call]) -> None:
        for task in tasks:
            if isinstance(task, _Call):
                _settle(task.future, task.function)
        searches = sorted((t for t in tasks if isinstance(t, _Search)), key=lambda t: t.collection)
        for collection, group in groupby(searches, key=lambda t: t.collection):
            self._run_searches(collection, list(group))

    def _next(self) -> list[_Search | _Call] | None:
        """The next tasks to run (None to stop): waiting requests up to MAX_BATCH, or one ingestion slice
        when none waits or the last turn went to requests."""
        with self._wake:
            while not (self._requests or self._background or self._stopping):
                self._wake.wait()
            if self._stopping:
                return None
            if self._requests and not (self._background and self._background_turn):
                taken = [self._requests.popleft() for _ in range(min(len(self._requests), MAX_BATCH))]
                self._background_turn = True  # a waiting slice goes next, however many requests wait
            else:
                taken = [self._background.popleft()]
                self._background_turn = False
            self._metrics.queue_depth.set(len(self._requests) + len(self._background))
        # A request whose client went away was cancelled; it is skipped, and can no longer be cancelled.
        return [task for task in taken if task.future.set_running_or_notify_cancel()]

    def _run_searches(self, collection: str, searches: list[_Search]) -> None:
        """One encode call for the batch's queries that need a vector (not BM25 alone: sparse mode)."""
        embedded = [needs_vector(s.options.get("mode", DEFAULT_MODE)) for s in searches]
        texts = [s.query for s, embeds in zip(searches, embedded, strict=True) if embeds]
        try:
            kit = self._collections.get(collection)
            retriever = kit.retriever()  # the first search checks that the collection is still there
            vectors = iter(self._encode(kit.encoder, texts, truncate=True)[0] if texts else [])
        except Exception as exc:  # the collection or its model is unusable: every search in it fails alike
            for search in searches:
                search.future.set_exception(exc)
            return
        self._metrics.search_batch.observe(len(searches))
        for search, embeds in zip(searches, embedded, strict=True):
            vector = next(vectors) if embeds else None
            _settle(search.future, partial(retriever.search_vector, vector, search.query, **search.options))

    def _encode(self, encoder: Encoder, texts: Sequence[str], **options: Any) -> tuple[np.ndarray, int]:
        stats = encoder.stats
        before = (stats.tokens, stats.truncated_texts, stats.truncated_tokens)
        vectors = encoder.encode(texts, **options)
        # Exact deltas: only this thread runs the encoder.
        tokens = stats.tokens - before[0]
        self._metrics.embedding_tokens.inc(tokens)
        self._metrics.truncated_texts.inc(stats.truncated_texts - before[1])
        self._metrics.truncated_tokens.inc(stats.truncated_tokens - before[2])
        return vectors, tokens


def _settle(future: Future[Any], function: Callable[[], Any]) -> None:
    try:
        future.set_result(function())
    except Exception as exc:  # delivered to the waiting request, which maps it to a response
        future.set_exception(exc)
