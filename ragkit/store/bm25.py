"""BM25 sparse vectors: one definition for both engines.

Qdrant Edge's `Bm25` (the same tokenizer, stop words and Snowball stemmers as the server's BM25
inference, configured by the same `Bm25Config`) runs here, in-process, for every engine: a server gets
the sparse vectors computed already. So the same text gives the same vector on Edge and on a server,
nothing is downloaded (fastembed's `Qdrant/bm25` is, at first use), and the server needs no inference
service. Documents get term-frequency weights; queries get 1.0 per term; the engine applies IDF.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import qdrant_edge as edge

from ragkit.errors import InputError
from ragkit.store.schema import Bm25Settings

# Format characters that show nothing inside a word: soft hyphen, combining grapheme joiner, Arabic letter
# mark, Mongolian vowel separator and free variation selectors, zero-width non-joiner and joiner,
# directional marks, embeddings and isolates, word joiner and invisible operators, variation selectors,
# byte-order mark. A zero-width space is not among them: it marks where a word ends.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u180b-\u180f\u200c-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufe00-\ufe0f\ufeff\U000e0100-\U000e01ef]"
)


@dataclass(frozen=True)
class SparseVector:
    """Term ids (hashed tokens) and their weights, engine-neutral."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, vector: Any) -> SparseVector:
        """Either engine's sparse vector (anything with `indices` and `values`) as ours."""
        return cls(tuple(vector.indices), tuple(vector.values))


def plain_vectors(named: dict[str, Any] | None) -> dict[str, Any]:
    """A point's named vectors as either engine returns them: sparse ones as `SparseVector`, dense as lists."""
    return {key: SparseVector.of(v) if hasattr(v, "indices") else v for key, v in (named or {}).items()}


def document_vector(settings: Bm25Settings, text: str) -> SparseVector:
    """The sparse vector of a text as it is stored: BM25 term-frequency weights."""
    return SparseVector.of(_model(settings).embed_document(_read(settings, text)))


def query_vector(settings: Bm25Settings, text: str) -> SparseVector:
    """The sparse vector of a query: weight 1.0 per distinct term."""
    return SparseVector.of(_model(settings).embed_query(_read(settings, text)))


def _read(settings: Bm25Settings, text: str) -> str:
    """The text as BM25 reads it (see `Bm25Settings.normalize`); ASCII is its own NFKC form."""
    if not settings.normalize or text.isascii():
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def edge_config(settings: Bm25Settings) -> edge.Bm25Config:
    """`settings` as Qdrant's `Bm25Config`, the JSON shape a server's BM25 inference takes too."""
    return edge.Bm25Config(
        k=settings.k,
        b=settings.b,
        avg_len=settings.avg_len,
        language=settings.language,
        stopwords=None if settings.stopwords else edge.StopwordsSet(),
        stemmer=None if settings.stemming else edge.DisabledStemmer(),
    )


def check(settings: Bm25Settings, owner: str) -> None:
    """Refuse settings the tokenizer cannot use (an unknown language) before `owner` records them."""
    try:
        _model(settings)
    except InputError as exc:
        raise InputError(f"{owner}: {exc}") from exc


@lru_cache(maxsize=16)
def _model(settings: Bm25Settings) -> edge.Bm25:
    try:
        return edge.Bm25(edge_config(settings))
    except ValueError as exc:
        raise InputError(f"BM25 settings {settings} are not usable: {exc}") from exc
