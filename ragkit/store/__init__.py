"""ragkit's vector store: the collection schema and every engine call, behind the `Store` facade.

This package is the only part of ragkit that imports `qdrant_client`; everything else uses these names.
"""

from ragkit.store.filters import to_qdrant_filter
from ragkit.store.ids import point_id
from ragkit.store.payload import PAYLOAD_FIELDS, check_metadata, section_payload
from ragkit.store.store import CollectionInfo, Hit, Point, Store

__all__ = [
    "PAYLOAD_FIELDS",
    "CollectionInfo",
    "Hit",
    "Point",
    "Store",
    "check_metadata",
    "point_id",
    "section_payload",
    "to_qdrant_filter",
]
