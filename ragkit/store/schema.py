"""The collection schema ragkit writes, in one place for both engines.

Schema 2: each section point holds a named dense vector (`dense`, cosine) and a BM25 sparse vector (`bm25`)
whose IDF the engine applies at query time (Qdrant's IDF modifier), so IDF stays right as documents come
and go. What a collection was built with (model, dimension, BM25 settings, declared indexes, quantization)
is recorded with it: as collection metadata on a server, as `schema.json` beside the shard in a folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ragkit.errors import InputError, StoreError

SCHEMA_VERSION = 2
DENSE = "dense"
SPARSE = "bm25"
# Keyword-indexed on every collection: ingestion's change detection and deletes filter on them.
BUILTIN_INDEXES = {"doc_id": "keyword", "source": "keyword"}
# "tenant": a keyword index marked is_tenant, so Qdrant stores each tenant's points together.
INDEX_KINDS = ("keyword", "integer", "float", "tenant")
QUANTIZATIONS = ("int8",)

SearchMode = Literal["dense", "sparse", "hybrid"]
SEARCH_MODES: tuple[str, ...] = ("dense", "sparse", "hybrid")
Fusion = Literal["rrf", "dbsf"]
FUSIONS: tuple[str, ...] = ("rrf", "dbsf")

# HNSW and search parameters, chosen by measured recall@10 against exact search (`python -m bench.hnsw`,
# 2026-12-01: 13,000 PostgreSQL-manual paragraphs embedded by MiniLM and 15,000 clustered synthetic
# points, 384-d, one indexed segment each): the cheapest build reaching 0.995 on both. m=16,
# ef_construct=64, hnsw_ef=128 gave 0.9973 / 0.9997 and built in 3.2 s / 2.6 s, where ef_construct=200
# took 13.2 s / 13.6 s for 0.9993 / 1.0; hnsw_ef=64 gave 0.9907 / 0.9970, too little headroom for
# larger graphs (`python -m bench.store` re-measures at 100,000 points). Segments under the engine's
# indexing threshold are searched exactly anyway. Re-run 2026-12-02 against a float64 NumPy top 10:
# 0.9977 / 0.9997, and 0.9977 / 1.0000 with int8 quantization and rescoring (`--quantize int8`).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 64
HNSW_EF = 128
# RRF's constant: score = sum over both lists of 1 / (RRF_K + rank), ranks from 0. Chosen by nDCG@10 of
# `ragkit eval --mode hybrid` on the postgres-15 and python-3.11 sets of bench/eval_datasets.py (README,
# "Evaluate"): k = 60 (Cormack et al.) gained +0.005 / +0.038 over dense, k = 10 +0.016 / +0.037, k = 5
# +0.014 / +0.045, k = 2 (Qdrant's default) +0.012 / +0.035; 10 has the best worst case. On git-2.39,
# held out from that choice, k = 10 gains +0.056, and on perl-5.36, built afterwards, +0.078. Weighting the
# dense list higher (Qdrant's `Rrf(weights=...)`, w = 1.25-3) only lowered postgres-15's gain.
RRF_K = 10
# Each mode's candidate list in a hybrid query holds this many times top_k (at least HYBRID_MIN_CANDIDATES).
# Deeper lists barely move the top 10: with a fixed depth per list, nDCG@10 on postgres-15 / python-3.11 /
# git-2.39 was 0.846 / 0.922 / 0.787 at 20, 0.850 / 0.930 / 0.794 at 40, and 0.850-0.851 / 0.930-0.931 /
# 0.794-0.796 from 100 to 4,000 (every section fused), so the floor of 40 costs about 0.002.
HYBRID_CANDIDATES = 4
HYBRID_MIN_CANDIDATES = 40
# int8 quantization: search the quantized vectors, rescore this many times top_k with the originals.
QUANTIZED_OVERSAMPLING = 2.0


@dataclass(frozen=True)
class Bm25Settings:
    """How text becomes BM25 terms: Qdrant's `Bm25Config`, the same JSON shape on Edge and on a server.

    `language` picks the stop words and the Snowball stemmer (English by default); `stemming=False` and
    `stopwords=False` turn them off, e.g. for code or identifiers. `k`, `b` and `avg_len` are BM25's
    parameters. A text's length, and so `avg_len`, counts the terms BM25 keeps: words and identifier
    parts, stop words left out. A MiniLM section (at most 256 tokens) holds about 80 of them on average,
    not 256, yet the matched `avg_len=80` retrieved worse in hybrid mode on all three sets of
    bench/eval_datasets.py (nDCG@10 -0.012 / -0.003 / -0.007) while better in sparse mode alone
    (+0.017 / +0.021 / +0.022), so the default stays: hybrid is the default mode.

    `normalize` has BM25 read text in Unicode's compatibility form (NFKC) without invisible format
    characters (soft hyphens, zero-width joiners, bidirectional marks, byte-order marks), as search
    engines' ICU folding does: Qdrant's tokenizer only lowercases, so "ﬁle" (a PDF's ligature), "ｆｉｌｅ",
    "fi\u00adle" and "café" with a combining accent were each a term of their own that no typed query
    matched. A collection recorded before this setting existed keeps reading text as given.
    """

    language: str = "english"
    stemming: bool = True
    stopwords: bool = True
    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0
    normalize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.language, str) or not self.language:
            raise InputError(
                f"BM25 language must be a language name such as 'english', got {self.language!r}"
            )
        if not all(isinstance(flag, bool) for flag in (self.stemming, self.stopwords, self.normalize)):
            raise InputError(f"BM25 stemming, stopwords and normalize must be true or false, got {self}")
        numbers = (self.k, self.b, self.avg_len)
        if any(
            isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) for n in numbers
        ):
            raise InputError(f"BM25 k, b and avg_len must be finite numbers, got {self}")
        if not 0 <= self.b <= 1 or self.k < 0 or self.avg_len <= 0:
            raise InputError(f"BM25 needs 0 <= b <= 1, k >= 0 and avg_len > 0, got {self}")


@dataclass(frozen=True)
class CollectionOptions:
    """How a new collection is built. None means "not asked for": the default when creating, and no check
    against what an existing collection recorded.

    `indexes` declares payload fields to index (`{"lang": "keyword", "year": "integer"}`) beyond doc_id and
    source, so that filtered search uses them; they are added to an existing collection too. `shards`,
    `replicas` and `write_consistency` are Qdrant's shard_number, replication_factor and
    write_consistency_factor, for a server or cluster only.
    """

    bm25: Bm25Settings | None = None
    indexes: Mapping[str, str] = field(default_factory=dict)
    quantize: str | None = None
    shards: int | None = None
    replicas: int | None = None
    write_consistency: int | None = None

    def cluster(self) -> dict[str, int]:
        """The cluster settings asked for (`{"shards": 3}`); empty when none were."""
        keys = ("shards", "replicas", "write_consistency")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}

    def __post_init__(self) -> None:
        for name, kind in self.indexes.items():
            if not isinstance(name, str) or not name or kind not in INDEX_KINDS:
                raise InputError(
                    f"index {name!r}:{kind!r} is invalid: name a payload field, and a kind out of "
                    f"{', '.join(INDEX_KINDS)}"
                )
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise InputError(f"quantize={self.quantize!r} is not supported; use one of {QUANTIZATIONS}")
        for key in ("shards", "replicas", "write_consistency"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{key} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Schema:
    """What a ragkit collection was built with; written once, when the collection is created."""

    model: str
    dim: int
    bm25: Bm25Settings = field(default_factory=Bm25Settings)
    indexes: Mapping[str, str] = field(default_factory=lambda: dict(BUILTIN_INDEXES))
    quantize: str | None = None

    @classmethod
    def build(cls, *, model: str, dim: int, options: CollectionOptions) -> Schema:
        return cls(
            model=model,
            dim=dim,
            bm25=options.bm25 or Bm25Settings(),
            indexes=BUILTIN_INDEXES | dict(options.indexes),
            quantize=options.quantize,
        )

    def with_index(self, field_name: str, kind: str) -> Schema:
        """This schema with one more payload index declared."""
        return replace(self, indexes={**self.indexes, field_name: kind})

    def to_json(self) -> dict[str, Any]:
        return {
            "ragkit_schema": SCHEMA_VERSION,
            "model": self.model,
            "dim": self.dim,
            "bm25": asdict(self.bm25),
            "indexes": dict(sorted(self.indexes.items())),
            "quantize": self.quantize,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Schema:
        """The recorded schema; an older, newer, foreign or malformed one is an error that says what to do.

        Every field is checked here, once: a damaged record must not open as a collection that then
        searches as quantized, or fails on its first index, because one value in it was wrong.
        """
        if not isinstance(raw, Mapping) or "model" not in raw:
            raise SchemaError(f"{where} was not created by ragkit: it has no recorded model")
        version = raw.get("ragkit_schema")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise SchemaError(
                f"{where} has ragkit schema {version}, written by a newer ragkit; this ragkit reads schema "
                f"{SCHEMA_VERSION}: open it with the ragkit version that wrote it, or a later one"
            )
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"{where} has ragkit schema {version!r}, this ragkit reads schema {SCHEMA_VERSION} "
                "(dense + BM25 vectors): re-ingest into a new collection, or for an embedded store folder "
                "written by an earlier ragkit run `ragkit store convert DIR`"
            )
        problem = _malformed(raw)
        if problem is None:
            try:
                return cls(
                    model=raw["model"],
                    dim=raw["dim"],
                    # recorded before `normalize` existed: its BM25 read text as given
                    bm25=Bm25Settings(**{"normalize": False, **raw.get("bm25", {})}),
                    indexes=dict(raw.get("indexes", BUILTIN_INDEXES)),
                    quantize=raw.get("quantize"),
                )
            except (TypeError, ValueError, InputError) as exc:
                problem = str(exc)
        raise SchemaError(f"{where} has a malformed recorded schema: {problem}")


def _malformed(raw: Mapping[str, Any]) -> str | None:
    """What is wrong with a recorded schema's fields, or None."""
    model, dim = raw.get("model"), raw.get("dim")
    if not isinstance(model, str) or not model:
        return f"model {model!r} is not a model name"
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        return f"dim {dim!r} is not a positive integer"
    if not isinstance(raw.get("bm25", {}), Mapping):
        return f"bm25 {raw['bm25']!r} is not a mapping of BM25 settings"
    indexes = raw.get("indexes", BUILTIN_INDEXES)
    if not isinstance(indexes, Mapping) or not all(
        isinstance(key, str) and key and kind in INDEX_KINDS for key, kind in indexes.items()
    ):
        return f"indexes {indexes!r} is not a mapping of payload fields to {', '.join(INDEX_KINDS)}"
    if raw.get("quantize") not in (None, *QUANTIZATIONS):
        return f"quantize {raw['quantize']!r} is not one of {', '.join(QUANTIZATIONS)} or null"
    return None


class SchemaError(StoreError):
    """A recorded schema is missing, foreign, older than this ragkit, or malformed."""


def check_mode(mode: str) -> str:
    if mode not in SEARCH_MODES:
        raise InputError(f"search mode {mode!r} is unknown; use one of {', '.join(SEARCH_MODES)}")
    return mode


def needs_vector(mode: str) -> bool:
    """Whether a search in `mode` needs the query's embedding: BM25 alone (sparse) needs none."""
    return mode != "sparse"


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise InputError(f"fusion {fusion!r} is unknown; use one of {', '.join(FUSIONS)}")
    return fusion


def parse_index(declaration: str) -> tuple[str, str]:
    """`FIELD[:keyword|integer|float]` (the CLI's `--index`) as (field, kind); keyword by default."""
    name, _, kind = declaration.partition(":")
    kind = kind or "keyword"
    if not name or kind not in INDEX_KINDS:
        raise InputError(
            f"--index {declaration!r} is invalid: use FIELD or FIELD:KIND with KIND one of {', '.join(INDEX_KINDS)}"
        )
    return name, kind
