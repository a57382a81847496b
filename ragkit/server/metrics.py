"""Prometheus metrics of one app: traffic, latency, embedding work and queue depth.

Each app has its own registry rather than the process-global one, so several apps in one process (tests,
or one app per collection set) never share or double-register series.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Searches answer in milliseconds on a GPU and in tenths of a second on a loaded CPU; ingestion uploads
# take seconds, so the buckets span both.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The series the service exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ragkit_http_requests",
            "HTTP requests answered, by route template (not raw path, to bound the series) and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ragkit_http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.embedding_tokens = Counter(
            "ragkit_embedding_tokens",
            "Tokens run through the encoder (queries, answer scoring and ingestion).",
            registry=self.registry,
        )
        self.truncated_texts = Counter(
            "ragkit_truncated_texts",
            "Texts embedded from their first max_length tokens only: queries over the model's limit (BM25 "
            "still reads all of a query; ingestion refuses an over-long section instead).",
            registry=self.registry,
        )
        self.truncated_tokens = Counter(
            "ragkit_truncated_tokens",
            "Tokens left out of embeddings by that truncation.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ragkit_engine_queue_depth",
            "Tasks waiting for the engine thread (searches, store calls, ingestion slices).",
            registry=self.registry,
        )
        self.search_batch = Histogram(
            "ragkit_search_batch_size",
            "Queries embedded together in one encoder call by the micro-batcher.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Counter(
            "ragkit_ingest_jobs",
            "Ingestion jobs finished, by outcome.",
            ["status"],
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
