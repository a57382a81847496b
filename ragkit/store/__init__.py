"""ragkit's vector store: the collection schema and every engine call, behind the `Store` facade.

This package is the only part of ragkit that imports `qdrant_edge` or `qdrant_client`; everything else
uses these names.
"""

from ragkit.store.address import StoreAddress
from ragkit.store.filters import parse_filters
from ragkit.store.ids import point_id
from ragkit.store.payload import PAYLOAD_FIELDS, check_metadata, section_payload
from ragkit.store.schema import (
    FUSIONS,
    SEARCH_MODES,
    Bm25Settings,
    CollectionOptions,
    Schema,
    SchemaError,
    parse_index,
)
from ragkit.store.store import Store
from ragkit.store.types import CollectionInfo, Hit, Point

__all__ = [
    "FUSIONS",
    "PAYLOAD_FIELDS",
    "SEARCH_MODES",
    "Bm25Settings",
    "CollectionInfo",
    "CollectionOptions",
    "Hit",
    "Point",
    "Schema",
    "SchemaError",
    "Store",
    "StoreAddress",
    "check_metadata",
    "parse_filters",
    "parse_index",
    "point_id",
    "section_payload",
]
