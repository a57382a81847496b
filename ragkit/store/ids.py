"""Deterministic point ids: the same section of the same document always lands on the same point.

That is what makes upserts idempotent and lets a crashed ingestion job simply run again.
"""

from __future__ import annotations

import json
import uuid

from ragkit.errors import InputError

# Fixed forever: changing it would give every existing point a new id and duplicate whole collections.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ragkit/point-id/v1")


def point_id(doc_id: str, position: int, content: str) -> str:
    """The UUID (as a string, which Qdrant accepts as a point id) of section `position` of `doc_id`.

    The content is part of the key so that an edited section gets a new point rather than silently
    keeping a stale vector; the three parts are JSON-encoded so no choice of separator can make two
    different triples collide.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"doc_id must be a non-empty string, got {doc_id!r}")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise InputError(f"position must be a non-negative int, got {position!r}")
    if not isinstance(content, str):
        raise InputError(f"content must be a string, got {type(content).__name__}")
    return str(uuid.uuid5(_NAMESPACE, json.dumps([doc_id, position, content])))
