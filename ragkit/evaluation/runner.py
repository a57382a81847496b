"""One evaluation end to end: dataset -> units -> embedded collection -> `Retriever` search -> metrics.

Everything goes through the parts users run (the sectioner, the encoder, the store, the retriever), so
the figures describe ragkit as deployed rather than a re-implementation of it.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragkit.encoder import Encoder
from ragkit.errors import InputError
from ragkit.evaluation.dataset import Dataset, DatasetError, load_beir
from ragkit.evaluation.index import index_units
from ragkit.evaluation.metrics import score
from ragkit.evaluation.options import EvalOptions, Strategy
from ragkit.evaluation.ranking import rank_queries
from ragkit.evaluation.result import EvalResult
from ragkit.evaluation.units import Unit, document_units, unit_limit
from ragkit.retrieval import MAX_TOP_K, Retriever
from ragkit.store import Store


def evaluate_folder(
    folder: str | Path,
    *,
    model: str,
    device: str = "auto",
    options: EvalOptions | None = None,
    split: str = "test",
    store: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    collection: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate `model` on a BEIR-layout folder, in a temporary embedded store unless `store` or `url`."""
    options = options or EvalOptions()
    dataset = load_beir(folder, split=split)  # a bad folder fails before any model loads
    encoder = Encoder.from_pretrained(model, device=device)
    with open_store(store=store, url=url, api_key=api_key) as opened:
        name = collection or collection_name(dataset.name, options, encoder.name)
        return evaluate(dataset, encoder, opened, collection=name, options=options, progress=progress)


def evaluate(
    dataset: Dataset,
    encoder: Encoder,
    store: Store,
    *,
    collection: str,
    options: EvalOptions | None = None,
    progress: bool = False,
) -> EvalResult:
    """Index `dataset` into `collection` (reusing what is stored) and score its judged queries."""
    options = options or EvalOptions()
    if isinstance(options.top_k, bool) or not 1 <= options.top_k <= MAX_TOP_K:
        raise InputError(f"--top-k must be from 1 to {MAX_TOP_K}, got {options.top_k}")
    max_tokens, clamped = unit_limit(options.strategy, options.chunk_tokens, encoder.max_length)
    notes = [*dataset.notes, *([clamped] if clamped else [])]
    units = _units(dataset, options.strategy, encoder, max_tokens, progress)
    indexed = len({unit.doc_id for unit in units})
    if not indexed:
        raise DatasetError(f"dataset {dataset.name}: no document has any text to embed")
    if indexed < len(dataset.documents):
        notes.append(f"{len(dataset.documents) - indexed} documents have no text and cannot be retrieved")
    stats = index_units(store, collection, encoder, units, source=dataset.name, progress=progress)
    if stats.deleted:
        notes.append(f"removed {stats.deleted} points of collection {collection!r} that no current unit has")
    queries = dataset.judged_queries
    run, search = rank_queries(
        Retriever(encoder, store, collection),
        queries,
        top_k=options.top_k,
        points=stats.units,
        documents=indexed,
        mode=options.mode,
        fusion=options.fusion,
        progress=progress,
    )
    if options.top_k < 100:
        notes.append(f"--top-k {options.top_k} < 100: Recall@100 counts only the top {options.top_k}")
    if search.short:
        notes.append(
            f"{search.short} queries ranked fewer than {options.top_k} documents: their documents have so "
            f"many {options.strategy}s that the search limit of {MAX_TOP_K} was reached"
        )
    return EvalResult(
        dataset=dataset.name,
        model=encoder.name,
        device=str(encoder.device),
        dtype=str(encoder.dtype).removeprefix("torch."),
        strategy=options.strategy,
        mode=options.mode,
        fusion=options.fusion,
        max_tokens=max_tokens,
        chunk_tokens=options.chunk_tokens if options.strategy == "chunk" else None,
        top_k=options.top_k,
        collection=collection,
        documents=len(dataset.documents),
        queries=len(queries),
        units=stats.units,
        units_embedded=stats.embedded,
        units_reused=stats.reused,
        tokens_embedded=stats.tokens,
        embed_seconds=stats.seconds,
        search_seconds=search.seconds,
        short_rankings=search.short,
        metrics=score(dataset.qrels, run),
        notes=notes,
    )


def collection_name(dataset: str, options: EvalOptions, model: str) -> str:
    """A name per (dataset, strategy, chunk size, model), so one --store keeps every variant apart."""
    variant = options.strategy if options.strategy == "section" else f"chunk{options.chunk_tokens}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-.")[:100] or "dataset"
    model_key = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"eval-{slug}-{variant}-{model_key}"


@contextmanager
def open_store(
    *, store: str | Path | None = None, url: str | None = None, api_key: str | None = None
) -> Iterator[Store]:
    """The store named by `url` or `store`, else an embedded one in a folder deleted afterwards."""
    if url or store:
        with Store.open(url=url, api_key=api_key) if url else Store.open(path=Path(store)) as opened:
            yield opened
        return
    with tempfile.TemporaryDirectory(prefix="ragkit-eval-") as folder, Store.open(path=folder) as opened:
        yield opened


def _units(
    dataset: Dataset, strategy: Strategy, encoder: Encoder, max_tokens: int, progress: bool
) -> list[Unit]:
    from tqdm.auto import tqdm

    documents = tqdm(
        dataset.documents.values(), desc=f"{strategy}s", unit="doc", disable=not progress, leave=False
    )
    return [
        unit for doc in documents for unit in document_units(doc, strategy, encoder.token_counter, max_tokens)
    ]
