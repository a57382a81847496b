"""The service's collections: one Kit per collection over one shared Store, and the view of a collection
that code running outside the engine thread (ingestion jobs, the query engine) works through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import ragkit
from ragkit.config import Settings
from ragkit.encoder import EncodeStats
from ragkit.encoder.batching import consecutive_groups
from ragkit.encoder.resolve import resolve_model
from ragkit.errors import CollectionNotFoundError, ModelLoadError
from ragkit.kit import Kit

if TYPE_CHECKING:
    from ragkit.encoder import Encoder, TokenCounter
    from ragkit.retrieval import Hit
    from ragkit.server.engine import Engine
    from ragkit.store import Store

# Ingestion slices of ~2k tokens on CPU (about one encoder batch there) and ~32k on CUDA (a quarter of
# one), at ~4 characters per token: a search that arrives during an upload waits for one slice at most.
_SLICE_CHARS = {"cpu": 8_000, "cuda": 128_000}


class Collections:
    """Kits by collection name, each opened once. Used from the engine thread only, so it needs no lock.

    All Kits share the Store opened at start: an embedded store folder can be opened once per process,
    and a server client is reusable. The service's model (`--model`) is that of the collections it
    creates; an existing collection is read with the model it records, and collections that record the
    same model share one loaded copy.
    """

    def __init__(self, store: Store, default: str, *, model: str | None, device: str) -> None:
        self.store = store
        self._model = model
        self._device = device
        self._kits: dict[str, Kit] = {}  # only collections seen to exist, or that an upload creates
        self._creating: set[str] = set()  # of those, the ones not seen to exist yet
        self.default = self._add(default, exists=default in store.collections())

    @classmethod
    def open(
        cls,
        collection: str | None,
        *,
        store: str | None,
        url: str | None,
        api_key: str | None,
        model: str | None,
        device: str | None,
    ) -> Collections:
        """Open the store now, so a locked folder or an unreachable server fails before the port opens."""
        # ragkit.open finds the store and the default collection from the arguments and the environment.
        opened = ragkit.open(collection, store=store, url=url, api_key=api_key, device=device)
        return cls(opened.store, opened.collection, model=model, device=device or Settings.from_env().device)

    def get(self, name: str, *, create: bool = False) -> Kit:
        """The Kit of an existing collection; with `create`, also of one that ingestion will create.

        A Kit made for an upload serves searches only once its collection exists: the upload may not have
        created it yet, or may have failed before it did.
        """
        kit = self._kits.get(name)
        if kit is not None and (create or name not in self._creating):
            return kit
        # Checked before a Kit is made, so that requests naming random collections cannot pile up
        # Kits (and load models) for collections that do not exist; and answered here, because the
        # store's own message lists every collection, which a key limited to some should not see.
        exists = name in self.store.collections()
        if not (exists or create):
            raise CollectionNotFoundError(f"collection {name!r} not found")
        if kit is None:
            return self._add(name, exists=exists)
        if exists:
            self._creating.discard(name)
        return kit

    def forget(self, name: str) -> None:
        """After `name` was deleted: its Kit is made anew, so that the next upload creates the collection
        with the service's model rather than the deleted one's (a loaded copy of the model is reused)."""
        if name in self._kits:
            self._add(name, exists=False)

    def _add(self, name: str, *, exists: bool) -> Kit:
        """A new Kit: with the service's model for a collection it creates, the recorded one otherwise."""
        if not exists:
            self._creating.add(name)
        model = None if exists else self._model
        kit = Kit(name, self.store, model=model, device=self._device, encoder=self._loaded_for(name))
        self._kits[name] = kit
        return kit

    def _loaded_for(self, name: str) -> Encoder | None:
        """A model already loaded for another collection that `name` is read with too: one copy per model
        (a new collection's is the service's model, which the default collection may hold already)."""
        try:
            wanted = self.store.collection_info(name).model
        except CollectionNotFoundError:
            wanted = self._new_collections_model()
        loaded = (kit.loaded_encoder for kit in self._kits.values())
        return next((encoder for encoder in loaded if encoder is not None and encoder.name == wanted), None)

    def _new_collections_model(self) -> str | None:
        """The name a collection created here records: the service's model, resolved as Encoder resolves
        it (an alias such as `minilm` records the hub id)."""
        try:
            return resolve_model(self._model or Settings.from_env().model).name
        except ModelLoadError:
            return None  # the new Kit's own load names the problem

    def close(self) -> None:
        self.store.close()


class CollectionView:
    """A collection as seen from outside the engine thread: the parts of `Kit` that the ingestion
    pipeline and the query engine use, with every model call routed through the engine.

    Searches join the engine's micro-batches; the store is used directly, as it serialises embedded calls
    itself and a server client is thread-safe.
    """

    def __init__(self, engine: Engine, kit: Kit, encoder: Encoder, *, background: bool) -> None:
        self.collection = kit.collection
        self.store = kit.store
        self.encoder = RoutedEncoder(engine, encoder, background=background)
        self._engine = engine

    def search(self, query: str, **options: Any) -> list[Hit]:
        return self._engine.search(self.collection, query, **options).result()

    async def asearch(self, query: str, **options: Any) -> list[Hit]:
        return await asyncio.wrap_future(self._engine.search(self.collection, query, **options))


class RoutedEncoder:
    """An `Encoder` stand-in whose `encode` runs on the engine thread.

    Background (ingestion) work is cut into slices queued behind requests. `stats` counts this object's
    own work only, so an ingestion report's token count is not inflated by concurrent searches. Token
    counting stays on the calling thread: it only reads the Rust tokenizer, which is thread-safe.
    """

    def __init__(self, engine: Engine, encoder: Encoder, *, background: bool) -> None:
        self.name: str = encoder.name
        self.dim: int = encoder.dim
        self.max_length: int = encoder.max_length
        self.device = encoder.device
        self.token_counter: TokenCounter = encoder.token_counter
        self.stats = EncodeStats()
        self._engine = engine
        self._encoder = encoder
        self._background = background
        self._slice_chars = _SLICE_CHARS.get(encoder.device.type, _SLICE_CHARS["cpu"])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._encoder.count_tokens(texts)

    def encode(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        texts = list(texts)
        parts = consecutive_groups(texts, len, self._slice_chars) if self._background else [texts]
        futures = [
            self._engine.encode(self._encoder, part, background=self._background, **options) for part in parts
        ]
        results = [future.result() for future in futures]
        self.stats.texts += len(texts)
        self.stats.tokens += sum(tokens for _, tokens in results)
        if not results:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.concatenate([vectors for vectors, _ in results])
