"""ragkit's vector store: the collection schema and every engine call, behind the `Store` facade.

This package is the only part of ragkit that imports `qdrant_client`; everything else uses these names.
"""

from ragkit.store.filters import to_qdrant_filter
from ragkit.store.ids import point_id
from ragkit.store.store import CollectionInfo, Hit, Point, Store

__all__ = ["CollectionInfo", "Hit", "Point", "Store", "point_id", "to_qdrant_filter"]
