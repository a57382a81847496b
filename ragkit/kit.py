"""`ragkit.open(...)`: one collection, its store and its encoder, behind the verbs users call.

The encoder is loaded lazily and defaults to the model recorded with the collection, so reading an
existing collection never needs the model named again, and a different one is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit import retrieval
from ragkit.config import DEFAULT_STORE, Settings
from ragkit.encoder import Encoder
from ragkit.errors import CollectionNotFoundError, ModelMismatchError
from ragkit.retrieval import Hit
from ragkit.store import CollectionInfo, Store

if TYPE_CHECKING:
    from ingest.report import IngestReport


class Kit:
    """A collection with its store and encoder. Close it (or use `with`) to release an embedded store."""

    def __init__(self, collection: str, store: Store, *, model: str | None, device: str) -> None:
        self.collection = collection
        self.store = store
        self._model = model
        self._device = device
        self._encoder: Encoder | None = None

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @property
    def encoder(self) -> Encoder:
        """The collection's encoder: the model named at open, else the one recorded, else the default."""
        if self._encoder is None:
            recorded = self._recorded_model()
            encoder = Encoder.from_pretrained(
                self._model or recorded or Settings.from_env().model, device=self._device
            )
            if recorded is not None and encoder.name != recorded:
                raise ModelMismatchError(
                    f"collection {self.collection!r} was built with model {recorded!r}, not {encoder.name!r}; "
                    f"open it without a model (or with {recorded!r}), or ingest into a new collection"
                )
            self._encoder = encoder
        return self._encoder

    def info(self) -> CollectionInfo:
        return self.store.collection_info(self.collection)

    def ingest(self, paths: list[str | Path] | str | Path, **options: Any) -> IngestReport:
        """Parse, section, embed and upsert documents; see `ingest.pipeline.run` for the options."""
        from ingest.pipeline import run

        if isinstance(paths, str | Path):
            paths = [paths]
        return run(self, [Path(p) for p in paths], **options)

    def delete_document(self, doc_id: str) -> int:
        """Delete every section of one document; returns how many there were."""
        deleted = self.store.count(self.collection, {"doc_id": doc_id})
        if deleted:
            self.store.delete_where(self.collection, {"doc_id": doc_id})
        return deleted

    def search(self, query: str, **options: Any) -> list[Hit]:
        """Best sections for a query: `top_k=5`, `filters={...}`, `score_threshold=None`."""
        self._require_collection()
        return retrieval.search(self, query, **options)

    async def asearch(self, query: str, **options: Any) -> list[Hit]:
        """`search` without blocking the event loop."""
        self._require_collection()
        return await retrieval.asearch(self, query, **options)

    def _require_collection(self) -> None:
        self.store.collection_info(self.collection)  # CollectionNotFoundError names the existing ones

    def _recorded_model(self) -> str | None:
        try:
            return self.store.collection_info(self.collection).model
        except CollectionNotFoundError:
            return None


def open(  # shadows the builtin on purpose: `ragkit.open(collection)` reads like `io.open`
    collection: str | None = None,
    *,
    store: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    device: str | None = None,
) -> Kit:
    """Open a collection in an embedded store folder (`store`) or on a Qdrant server (`url`).

    Unset arguments come from the environment (RAGKIT_STORE, RAGKIT_QDRANT_URL, ...); with neither a
    store nor a URL anywhere, the embedded store in ./ragkit-store is used.
    """
    settings = Settings.from_env()
    url = url or (None if store else settings.url)
    if url:
        opened = Store.open(url=url, api_key=api_key or settings.api_key)
    else:
        opened = Store.open(path=Path(store or settings.store or DEFAULT_STORE))
    return Kit(collection or settings.collection, opened, model=model, device=device or settings.device)
