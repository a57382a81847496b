"""Sections to points, and points into the collection: the embedding and writing steps of a job.

Both runners use these: the one-machine pipeline in its main loop and writer thread, the Ray runner in
its encoder actors and writers. A document is written by upserting its new points (deterministic ids,
so repeats are harmless) and then deleting the ones no longer part of it; a job stopped in between
leaves the document with two hashes, which the next run sees as incomplete and redoes. A changed
document that now fails to parse loses its old points the same way, so that a job over changed files
ends with the points of a clean run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ingest.prepare import Job, Prepared
from ingest.report import IngestReport
from ingest.sections import Section
from ragkit.errors import StoreError
from ragkit.store import Point, Store, point_id, section_payload

log = logging.getLogger("ragkit.ingest")

Written = tuple[Prepared, list[Point]]


class Encodes(Protocol):
    """What embedding needs of an encoder: `Encoder` and the server's routed stand-in both have it."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def embed(batch: list[Prepared], encoder: Encodes, metadata: dict[str, Any]) -> list[Written]:
    """The points of each document, embedded together (one call, so the encoder packs full batches)."""
    texts = [section.embed_text for prepared in batch for section in prepared.sections]
    if not texts:
        return []
    vectors = iter(encoder.encode(texts))
    return [
        (
            prepared,
            [
                _point(prepared, i, section, next(vectors), metadata)
                for i, section in enumerate(prepared.sections)
            ],
        )
        for prepared in batch
    ]


def _point(prepared: Prepared, index: int, section: Section, vector: Any, metadata: dict[str, Any]) -> Point:
    job = prepared.job
    payload = section_payload(
        text=section.text,
        doc_id=job.doc_id,
        source=str(job.path),
        title=prepared.title,
        breadcrumb=section.breadcrumb,
        section_index=index,
        section_count=len(prepared.sections),
        tokens=section.tokens,
        page_start=section.page_start,
        page_end=section.page_end,
        doc_hash=job.doc_hash,
        metadata=metadata,
    )
    return Point(point_id(job.doc_id, index, section.embed_text), vector, payload, text=section.embed_text)


def count_written(report: IngestReport, prepared: Prepared, document_points: list[Point]) -> int:
    """Count one written document in `report`, as both runners do; returns its tokens. Counted from the
    sections: the encoder's own totals also hold what anyone else embeds with it meanwhile (the same
    Kit's searches, from another thread)."""
    tokens = sum(section.tokens for section in prepared.sections)
    report.documents_ingested += 1
    report.sections_embedded += len(document_points)
    report.tokens_embedded += tokens
    report.breadcrumbs_shortened += sum(section.breadcrumb_shortened for section in prepared.sections)
    return tokens


def write(store: Store, collection: str, documents: list[Written], failed: Sequence[Job] = ()) -> int:
    """Upsert all the documents' new points, then delete their stale ones and every point of the
    `failed` documents that had any (changed files that now fail, of which a clean run would hold none);
    returns how many points were deleted. Both runners pass every failed document of the group: which
    of them lose points is decided here, once.

    As few requests as the store's size limit allows: one upsert and one delete for the whole group.
    A write that fails part way removes the group's documents (see `_remove`) and raises a StoreError
    naming the collection: every document ends complete or absent, on one machine and on Ray alike.
    """
    discarded = [job for job in failed if job.old is not None]
    if not documents and not discarded:
        return 0
    try:
        return _write(store, collection, documents, discarded)
    except Exception as exc:
        _remove(store, collection, documents, discarded)
        raise StoreError(f"writing to collection {collection!r} failed: {exc}") from exc


def _write(store: Store, collection: str, documents: list[Written], discarded: Sequence[Job]) -> int:
    new = [point for _, points in documents for point in points]
    store.upsert(collection, new)
    jobs = [prepared.job for prepared, _ in documents] + list(discarded)
    old = {pid for job in jobs if job.old is not None for pid in job.old.ids}
    stale = sorted(old - {point.id for point in new})  # ids name their document: no two documents share one
    if stale:
        store.delete_points(collection, stale)
    return len(stale)


def _remove(store: Store, collection: str, documents: list[Written], discarded: Sequence[Job]) -> None:
    """Delete the documents of a group whose write failed part way, so none stays half-written.

    The process lives on after a refused write (a full disk), unlike after a kill, so it can leave each
    document complete or absent rather than for the next run to redo; that run writes them again.
    """
    doc_ids = sorted({prepared.job.doc_id for prepared, _ in documents} | {job.doc_id for job in discarded})
    try:
        store.delete_where(collection, {"doc_id": doc_ids})
    except Exception as exc:
        log.warning(
            "could not remove the partly written documents %s (%s); the next run redoes them", doc_ids, exc
        )
