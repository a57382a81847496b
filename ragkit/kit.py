"""`ragkit.open(...)`: one collection, its store and its encoder, behind the verbs users call.

The encoder is loaded lazily and defaults to the model recorded with the collection, so reading an
existing collection never needs the model named again, and a different one is refused.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.config import DEFAULT_STORE, Settings
from ragkit.encoder import Encoder, EncoderSpec
from ragkit.errors import CollectionNotFoundError, InputError, ModelMismatchError, RagkitError
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, Hit, Retriever
from ragkit.store import CollectionInfo, Store
from ragkit.store.address import StoreAddress
from ragkit.store.schema import check_fusion, check_mode

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever as LangChainBaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever as LlamaIndexBaseRetriever

    from ingest.report import IngestReport
    from ragkit.query_engine import QueryEngine


class Kit:
    """A collection with its store and encoder. Close it (or use `with`) to release an embedded store."""

    def __init__(
        self,
        collection: str,
        store: Store,
        *,
        model: str | None,
        device: str,
        encoder: Encoder | None = None,
        address: StoreAddress | None = None,
    ) -> None:
        self.collection = collection
        self.store = store
        self._address = address  # where `store` was opened: what a job on other processes reopens
        self._model = model
        self._device = device
        self._encoder: Encoder | None = None
        self._loading = threading.Lock()
        self._given = encoder  # one loaded encoder can serve several collections
        self._found = False  # the collection was seen to exist

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @property
    def encoder(self) -> Encoder:
        """The collection's encoder: the model named at open, else the one recorded, else the default.

        Loaded once however many threads ask at once (concurrent searches, `asearch`): each would
        otherwise load a copy of the model.
        """
        if self._encoder is None:
            with self._loading:
                if self._encoder is None:
                    self._encoder = self._load_encoder()
        return self._encoder

    def _load_encoder(self) -> Encoder:
        recorded = self._recorded_model()
        encoder = self._given or Encoder.from_pretrained(
            self._model or recorded or Settings.from_env().model, device=self._device
        )
        if recorded is not None and encoder.name != recorded:
            raise ModelMismatchError(
                f"collection {self.collection!r} was built with model {recorded!r}, not {encoder.name!r}; "
                f"open it without a model (or with {recorded!r}), or ingest into a new collection"
            )
        return encoder

    @property
    def loaded_encoder(self) -> Encoder | None:
        """The encoder if it is loaded already, without loading it: lets other collections share it."""
        return self._encoder or self._given

    def info(self) -> CollectionInfo:
        return self.store.collection_info(self.collection)

    def ingest(
        self, paths: list[str | Path] | str | Path, *, ray: bool | str | None = None, **options: Any
    ) -> IngestReport:
        """Parse, section, embed and upsert documents; see `ingest.pipeline.run` for the options.

        `ray` runs the same job on Ray Data (see `ingest.ray_runner`): `True` on a local Ray (or the one
        this process is connected to), `"auto"` on the cluster of this machine, or a `ray://` URL.
        """
        if isinstance(paths, str | Path):
            paths = [paths]
        paths = [Path(p) for p in paths]
        if not ray:
            from ingest.pipeline import run

            return run(self.encoder, self.store, self.collection, paths, **options)
        from ingest.ray_runner import import_ray, open_when_free, run_on_ray

        if self._address is None:
            raise InputError(
                "ingest(ray=...) needs a collection opened with ragkit.open(store=... or url=...)"
            )
        import_ray()  # before anything is handed over: a missing extra is named at once
        spec = EncoderSpec(self._model_name(), self._device)
        if not self._address.embedded:
            return run_on_ray(spec, self._address, self.collection, paths, ray=ray, **options)
        # The job's writer opens the folder, which one process at a time may hold: hand it over and back.
        self.store.close()
        try:
            report = run_on_ray(spec, self._address, self.collection, paths, ray=ray, **options)
        except BaseException as stopped:
            # The job's error is the one to see; a store that will not reopen after it is a note on it,
            # not a replacement (it was raised in its place, the job's cause left in the chain).
            try:
                self.store = open_when_free(self._address)
            except RagkitError as reopen:
                stopped.add_note(f"and afterwards the store could not be opened again: {reopen}")
            raise
        self.store = open_when_free(self._address)
        return report

    def delete_document(self, doc_id: str) -> int:
        """Delete every section of one document; returns how many there were."""
        deleted = self.store.count(self.collection, {"doc_id": doc_id})
        if deleted:
            self.store.delete_where(self.collection, {"doc_id": doc_id})
        return deleted

    def retriever(self) -> Retriever:
        """The read path over this collection: its encoder and store, without the rest of the Kit."""
        self._require_collection()
        return Retriever(_EncoderOnDemand(self), self.store, self.collection)

    def search(self, query: str, **options: Any) -> list[Hit]:
        """Best sections for a query: `top_k=5`, `filters={...}`, `score_threshold=None`,
        `mode="hybrid"|"dense"|"sparse"`, `fusion="rrf"|"dbsf"` (hybrid's; see `ragkit.retrieval.Retriever.search`)."""
        _check_fusion(options)
        return self.retriever().search(query, **options)

    async def asearch(self, query: str, **options: Any) -> list[Hit]:
        """`search` in a worker thread, all of it: the collection check of a first search is a round trip
        to a server, and the encoder and an embedded store block too."""
        return await asyncio.to_thread(self.search, query, **options)

    def query_engine(self, llm: Any = None, **options: Any) -> QueryEngine:
        """Answers with numbered sources: `top_k`, `context_tokens`, `filters`, `mode`, `fusion`; see `ragkit.query_engine`."""
        from ragkit.query_engine import QueryEngine

        return QueryEngine(self, llm, **options)

    def as_langchain_retriever(self, **options: Any) -> LangChainBaseRetriever:
        """A LangChain retriever over `search`: `k=5`, `filters`, `score_threshold`, `mode`, `fusion`."""
        from ragkit.integrations.langchain import LangChainRetriever

        return LangChainRetriever(kit=self, **options)

    def langchain_embeddings(self) -> Embeddings:
        """The collection's encoder as LangChain `Embeddings`."""
        from ragkit.integrations.langchain import LangChainEmbeddings

        return LangChainEmbeddings(self.encoder)

    def as_llamaindex_retriever(self, **options: Any) -> LlamaIndexBaseRetriever:
        """A LlamaIndex retriever over `search`: `similarity_top_k=5`, `filters`, `score_threshold`, `mode`,
        `fusion`."""
        from ragkit.integrations.llamaindex import LlamaIndexRetriever

        return LlamaIndexRetriever(self, **options)

    def llamaindex_embedding(self) -> BaseEmbedding:
        """The collection's encoder as a LlamaIndex `BaseEmbedding`."""
        from ragkit.integrations.llamaindex import LlamaIndexEmbedding

        return LlamaIndexEmbedding(self.encoder)

    def as_llamaindex_query_engine(self, llm: Any, **options: Any) -> RetrieverQueryEngine:
        """A LlamaIndex `RetrieverQueryEngine` with your LlamaIndex LLM; retriever options as above."""
        from ragkit.integrations.llamaindex import query_engine

        return query_engine(self, llm, **options)

    def _require_collection(self) -> None:
        """A missing collection is named as such, before a default model is loaded for nothing.

        Checked until it is found, not on every search: after that, the store's search itself reports a
        collection deleted meanwhile, and a server is spared two requests per query.
        """
        if not self._found:
            self.store.collection_info(self.collection)  # CollectionNotFoundError names the existing ones
            self._found = True

    def _model_name(self) -> str:
        """The model `encoder` would load, without loading it."""
        loaded = self.loaded_encoder
        if loaded is not None:
            return loaded.name
        return self._model or self._recorded_model() or Settings.from_env().model

    def _recorded_model(self) -> str | None:
        try:
            return self.store.collection_info(self.collection).model
        except CollectionNotFoundError:
            return None


def _check_fusion(options: dict[str, Any]) -> None:
    """A fusion chosen for dense or sparse mode, which search one list and fuse nothing, was ignored in
    silence. Only a fusion other than the default is refused: the adapters and the query engines pass
    theirs whatever their mode, the default unless told otherwise, so that one cannot tell a choice."""
    mode = check_mode(options.get("mode", DEFAULT_MODE))
    fusion = check_fusion(options.get("fusion", DEFAULT_FUSION))
    if mode != "hybrid" and fusion != DEFAULT_FUSION:
        raise InputError(
            f"fusion={fusion!r} applies to mode='hybrid' only, which fuses a dense and a sparse list; "
            f"mode={mode!r} searches one list: pass mode='hybrid', or leave fusion out"
        )


def store_address(
    *, store: str | Path | None = None, url: str | None = None, api_key: str | None = None
) -> StoreAddress:
    """The store that `open` would open, resolved as it resolves it, for callers that need the store but
    no collection (listing them): unset arguments come from the environment, and with neither a store nor
    a URL anywhere it is the embedded store in ./ragkit-store."""
    settings = Settings.from_env()
    url = url or (None if store else settings.url)
    if api_key and not url:  # as the CLI refuses --api-key: a key given for no server is a mistake
        raise InputError(
            "api_key is given but there is no Qdrant server to send it to: pass url= (or set "
            "RAGKIT_QDRANT_URL) for a server; an embedded store folder takes no key"
        )
    if url:
        return StoreAddress(url=url, api_key=api_key or settings.api_key)
    return StoreAddress(path=Path(store or settings.store or DEFAULT_STORE))


def open(  # shadows the builtin on purpose: `ragkit.open(collection)` reads like `io.open`
    collection: str | None = None,
    *,
    store: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    device: str | None = None,
    encoder: Encoder | None = None,
) -> Kit:
    """Open a collection in an embedded store folder (`store`) or on a Qdrant server (`url`).

    Unset arguments come from the environment (RAGKIT_STORE, RAGKIT_QDRANT_URL, ...); with neither a
    store nor a URL anywhere, the embedded store in ./ragkit-store is used. Pass a loaded `encoder` to
    share one model between collections or to choose its dtype.
    """
    settings = Settings.from_env()
    address = store_address(store=store, url=url, api_key=api_key)
    return Kit(
        collection or settings.collection,
        address.open(),
        model=model,
        device=device or settings.device,
        encoder=encoder,
        address=address,
    )


class _EncoderOnDemand:
    """The Kit's encoder, loaded by the first query that needs a vector: BM25 alone (sparse mode) needs
    none, so a sparse search runs without the model, offline and uncached included."""

    def __init__(self, kit: Kit) -> None:
        self._kit = kit

    def encode(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        return self._kit.encoder.encode(texts, **options)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._kit.encoder.count_tokens(texts)
