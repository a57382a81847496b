"""What a section point holds: the one definition of the payload (README, "What a point holds").

Ingestion and evaluation both write through `section_payload`, and user metadata may not take these
names, so every collection ragkit writes reads the same to search, the adapters and the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragkit.errors import InputError

PAYLOAD_FIELDS = (
    "text", "doc_id", "source", "title", "breadcrumb", "section_index", "section_count",
    "page_start", "page_end", "tokens", "doc_hash",
)  # fmt: skip


def section_payload(
    *,
    text: str,
    doc_id: str,
    source: str,
    title: str,
    breadcrumb: Sequence[str],
    section_index: int,
    section_count: int,
    tokens: int,
    page_start: int | None = None,
    page_end: int | None = None,
    doc_hash: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload of one section; `metadata` (user keys) is stored beside ragkit's own fields."""
    return (metadata or {}) | {
        "text": text,
        "doc_id": doc_id,
        "source": source,
        "title": title,
        "breadcrumb": list(breadcrumb),
        "section_index": section_index,
        "section_count": section_count,
        "page_start": page_start,
        "page_end": page_end,
        "tokens": tokens,
        "doc_hash": doc_hash,
    }


# Not stored, but where the LangChain adapter puts each hit's search score beside the payload.
RESERVED_KEYS = (*PAYLOAD_FIELDS, "score")


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """User metadata, refused when it would overwrite one of ragkit's own payload fields or the score."""
    clash = sorted(set(metadata) & set(RESERVED_KEYS))
    if clash:
        raise InputError(f"metadata keys {clash} are reserved by ragkit ({', '.join(RESERVED_KEYS)})")
    return metadata
