"""qdrant-client's local mode (`QdrantClient(path=...)`) as the benchmarks' point of comparison.

It is the embedded Qdrant that LangChain's and LlamaIndex's Qdrant stores give their users: the points
live in Python (NumPy for vectors) and in a SQLite file that commits, and so fsyncs, every point on its
own. On a busy disk that is tens of points a second; the benchmarks time what they compare and fill the
rest of a large collection through the same client without the fsyncs (`unsynced`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from qdrant_client import QdrantClient, models

DENSE = "dense"  # ragkit's vector names, so that both engines hold the same collection
SPARSE = "bm25"


def create(client: QdrantClient, collection: str, dim: int, *, sparse: bool = True) -> None:
    """A collection shaped like ragkit's schema 2: cosine `dense`, and BM25 `bm25` with the IDF modifier."""
    client.create_collection(
        collection,
        vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        if sparse
        else None,
    )


@contextmanager
def unsynced(client: QdrantClient, collection: str) -> Iterator[None]:
    """Local mode's SQLite without a disk sync per commit, for untimed bulk loading."""
    connection = client._client.collections[collection].storage.storage
    connection.execute("PRAGMA synchronous=OFF")
    try:
        yield
    finally:
        connection.execute("PRAGMA synchronous=FULL")
