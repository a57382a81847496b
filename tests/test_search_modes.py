"""Search modes (dense, sparse BM25, hybrid) and the schema-2 collection, on both real engines: Qdrant Edge
in a folder, and the server request path through qdrant-client's in-memory engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragkit.errors import InputError
from ragkit.store import Bm25Settings, CollectionOptions, Point, Store, point_id
from ragkit.store.bm25 import document_vector
from ragkit.store.schema import RRF_K, Schema

TEXTS = [
    "PostgreSQL vacuum reclaims storage occupied by dead tuples",
    "The autovacuum daemon automates the vacuum and analyze commands of PostgreSQL",
    "Tomato plants need pruning of their suckers in summer",
    "Index only scans avoid visiting the heap when the visibility map allows it",
    "The cat sat on the mat while the dogs were running in the park",
    "Streaming replication ships write-ahead log records to standby servers",
    "Running a standby server needs a base backup and archived WAL files",
    "Roses and tomato seedlings are planted after the last frost",
]
ENGINES = {"edge": lambda folder: Store.open(path=folder), "server": lambda _: Store.open(url=":memory:")}


def points(texts: list[str], *, seed: int = 0, doc: str = "d") -> list[Point]:
    """One point per text: distinct random unit vectors (so dense ranks have no ties), the text as payload."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
    return [
        Point(
            point_id(f"{doc}{i % 2}", i, t), v, {"text": t, "doc_id": f"{doc}{i % 2}", "source": "s", "n": i}
        )
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]


@pytest.fixture(params=ENGINES, ids=ENGINES)
def store(request, tmp_path: Path):
    with ENGINES[request.param](tmp_path / "db") as opened:
        opened.ensure_collection("docs", dim=8, model="m")
        opened.upsert("docs", points(TEXTS))
        yield opened


def texts_of(hits) -> list[str]:
    return [hit.payload["text"] for hit in hits]


def test_both_engines_store_the_same_bm25_vector_of_the_embedded_text(tmp_path: Path):
    embedded = [f"Guide > Maintenance\n\n{text}" for text in TEXTS]
    written = [Point(p.id, p.vector, p.payload, text=e) for p, e in zip(points(TEXTS), embedded, strict=True)]
    stored = {}
    for name, open_store in ENGINES.items():
        with open_store(tmp_path / name) as store:
            store.ensure_collection("docs", dim=8, model="m")
            store.upsert("docs", written)
            stored[name] = {pid: vectors["bm25"] for pid, _, vectors in store.scroll_points("docs")}
    assert stored["edge"] == stored["server"]
    expected = {p.id: document_vector(Bm25Settings(), e) for p, e in zip(written, embedded, strict=True)}
    assert stored["edge"] == expected
    # The breadcrumb is indexed too: "maintenance" is in no section text, yet every vector has the term.
    maintenance = set(document_vector(Bm25Settings(), "maintenance").indices)
    assert all(maintenance <= set(vector.indices) for vector in expected.values())


def test_sparse_mode_finds_the_keywords_and_scores_them_the_same_on_both_engines(tmp_path: Path):
    results = {}
    for name, open_store in ENGINES.items():
        with open_store(tmp_path / name) as store:
            store.ensure_collection("docs", dim=8, model="m")
            store.upsert("docs", points(TEXTS))
            results[name] = store.search("docs", None, mode="sparse", text="tomato pruning", top_k=5)
    assert texts_of(results["edge"]) == [TEXTS[2], TEXTS[7]]
    assert texts_of(results["server"]) == texts_of(results["edge"])
    assert [h.score for h in results["server"]] == pytest.approx([h.score for h in results["edge"]], rel=1e-5)


def test_idf_follows_the_collection_as_documents_arrive(store: Store):
    before = store.search("docs", None, mode="sparse", text="tomato", top_k=1)[0]
    store.upsert("docs", points([f"tomato soup recipe number {i}" for i in range(20)], seed=1, doc="x"))
    after = store.search("docs", None, mode="sparse", text="tomato", top_k=30)
    same = next(hit for hit in after if hit.id == before.id)
    # The stored term weights did not change; the engine's IDF of "tomato" fell as it became common.
    assert same.score < 0.5 * before.score


def test_hybrid_is_reciprocal_rank_fusion_of_both_lists_computed_by_the_engine(store: Store):
    query = np.random.default_rng(7).normal(size=8)
    # No two sections tie on BM25 here: the engine ranks tied ones inside its lists in an order of its own.
    text = "tomato pruning suckers summer dead tuples replication"
    candidates = 40
    dense = store.search("docs", query, mode="dense", top_k=candidates)
    sparse = store.search("docs", None, mode="sparse", text=text, top_k=candidates)
    expected: dict[str, float] = {}
    for ranking in (dense, sparse):
        for position, hit in enumerate(ranking):
            expected[hit.id] = expected.get(hit.id, 0.0) + 1 / (RRF_K + position)
    hybrid = store.search("docs", query, mode="hybrid", text=text, top_k=len(TEXTS))
    assert {h.id: h.score for h in hybrid} == pytest.approx(expected, rel=1e-5)
    assert [h.score for h in hybrid] == pytest.approx(sorted(expected.values(), reverse=True), rel=1e-5)
    assert hybrid[0].score <= 2 / RRF_K


@pytest.mark.parametrize("engine", ENGINES)
def test_equal_scores_are_ordered_by_point_id_so_a_search_always_gives_the_same_hits(
    engine: str, tmp_path: Path
):
    """Dense ranks 0..11 and BM25 ranks 11..0: under RRF, points i and 11 - i tie exactly, at every cut."""
    n = 12
    angles = np.linspace(0.1, 1.2, n)
    rows = []
    for i, angle in enumerate(angles):
        vector = np.zeros(8, dtype=np.float32)
        vector[:2] = np.cos(angle), np.sin(angle)  # cosine to the query falls with i
        text = " ".join(["vacuum"] * (i + 1) + ["tuple"] * (n - i))  # one length; BM25 rises with i
        rows.append(Point(point_id("d", i, text), vector, {"text": text, "doc_id": "d", "source": "s"}))
    query = np.eye(8, dtype=np.float32)[0]
    with ENGINES[engine](tmp_path / "db") as store:
        store.ensure_collection("ties", dim=8, model="m")
        store.upsert("ties", rows)
        everything = store.search("ties", query, mode="hybrid", text="vacuum", top_k=n)
        assert len({hit.score for hit in everything}) == n // 2  # the pairs do tie
        assert everything == sorted(everything, key=lambda hit: (-hit.score, hit.id))
        for top_k in range(1, n + 1):
            for _ in range(3):
                assert (
                    store.search("ties", query, mode="hybrid", text="vacuum", top_k=top_k)
                    == everything[:top_k]
                )


def test_hybrid_applies_the_filters_to_both_candidate_lists(store: Store):
    query = np.random.default_rng(3).normal(size=8)
    for filters in ({"doc_id": "d1"}, {"n": {"gte": 6}}, {"n": [0, 5]}):
        expected = {p.id for p in points(TEXTS) if _matches(p.payload, filters)}
        hits = store.search("docs", query, mode="hybrid", text="tomato vacuum", top_k=8, filters=filters)
        # Every matching point is found, none other: filtering happened inside each prefetch.
        assert {h.id for h in hits} == expected


def _matches(payload: dict, filters: dict) -> bool:
    key, condition = next(iter(filters.items()))
    value = payload[key]
    if isinstance(condition, dict):
        return value >= condition["gte"]
    return value in condition if isinstance(condition, list) else value == condition


def test_dbsf_fusion_is_selectable_and_normalises_scores(store: Store):
    query = np.asarray(points(TEXTS)[2].vector)
    rrf = store.search("docs", query, mode="hybrid", text="tomato", top_k=3)
    dbsf = store.search("docs", query, mode="hybrid", text="tomato", top_k=3, fusion="dbsf")
    assert rrf[0].payload["text"] == dbsf[0].payload["text"] == TEXTS[2]
    assert all(0 <= h.score <= 2 for h in dbsf)
    assert dbsf[0].score > rrf[0].score  # DBSF scores are normalised distances, RRF's reciprocal ranks
    with pytest.raises(InputError, match="fusion 'max'"):
        store.search("docs", query, mode="hybrid", text="tomato", fusion="max")


def test_score_threshold_is_in_the_scale_of_the_mode(store: Store):
    query = np.asarray(points(TEXTS)[0].vector)
    assert [h.score >= 0.99 for h in store.search("docs", query, mode="dense", score_threshold=0.99)] == [
        True
    ]
    sparse = store.search("docs", None, mode="sparse", text="tomato pruning", top_k=8)
    cut = (sparse[0].score + sparse[1].score) / 2
    assert sparse[0].score > sparse[1].score
    assert len(store.search("docs", None, mode="sparse", text="tomato pruning", score_threshold=cut)) == 1
    top = store.search("docs", query, mode="hybrid", text="vacuum", top_k=1)[0].score
    assert len(store.search("docs", query, mode="hybrid", text="vacuum", score_threshold=top)) == 1


def test_modes_refuse_a_missing_vector_or_text_and_unknown_modes(store: Store):
    with pytest.raises(InputError, match="sparse search needs the query's text"):
        store.search("docs", None, mode="sparse")
    with pytest.raises(InputError, match="hybrid search needs the query's vector"):
        store.search("docs", None, mode="hybrid", text="x")
    with pytest.raises(InputError, match="search mode 'bm25'"):
        store.search("docs", [1.0] * 8, mode="bm25")


@pytest.mark.parametrize("engine", ENGINES)
def test_bm25_is_english_by_default_and_configurable_per_collection(engine: str, tmp_path: Path):
    with ENGINES[engine](tmp_path / "db") as store:
        plain = CollectionOptions(bm25=Bm25Settings(stemming=False, stopwords=False))
        store.ensure_collection("english", dim=8, model="m")
        store.ensure_collection("plain", dim=8, model="m", options=plain)
        for name in ("english", "plain"):
            store.upsert(name, points(TEXTS))
        # English: Snowball stems "runs" and "running" alike, and "the" is a stop word.
        assert TEXTS[4] in texts_of(store.search("english", None, mode="sparse", text="runs"))
        assert store.search("english", None, mode="sparse", text="the") == []
        assert store.search("plain", None, mode="sparse", text="runs") == []
        assert TEXTS[4] in texts_of(store.search("plain", None, mode="sparse", text="the"))
        assert store.schema("plain").bm25 == plain.bm25
        store.ensure_collection("plain", dim=8, model="m")  # no settings given: nothing to check
        with pytest.raises(InputError, match="BM25 settings are fixed"):
            store.ensure_collection("plain", dim=8, model="m", options=CollectionOptions(bm25=Bm25Settings()))


TYPESET = [
    "The \ufb01le lists every \ufb01eld",  # a PDF's "fi" ligature
    "\uff56\uff41\uff43\uff55\uff55\uff4d reclaims storage",  # full-width letters
    "an opti\u00adonal break",  # a soft hyphen (HTML's &shy;)
    "a cafe\u0301 menu",  # a combining accent
    "no match for any query here",
]


@pytest.mark.parametrize("engine", ENGINES)
def test_bm25_reads_ligatures_wide_letters_soft_hyphens_and_combining_accents_as_the_typed_word(
    engine: str, tmp_path: Path
):
    raw = CollectionOptions(bm25=Bm25Settings(normalize=False))
    with ENGINES[engine](tmp_path / "db") as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.ensure_collection("raw", dim=8, model="m", options=raw)
        for name in ("docs", "raw"):
            store.upsert(name, points(TYPESET))
        for query, text in zip(("file", "vacuum", "optional", "caf\u00e9"), TYPESET, strict=False):
            assert texts_of(store.search("docs", None, mode="sparse", text=query)) == [text]
            assert store.search("raw", None, mode="sparse", text=query) == []  # each its own term
        # A query typed the other way round finds the plain words too.
        assert store.search("docs", None, mode="sparse", text="\ufb01eld") != []


def test_a_collection_recorded_before_bm25_normalized_text_keeps_reading_it_as_given():
    recorded = {"ragkit_schema": 2, "model": "m", "dim": 8, "bm25": {"language": "english"}}
    assert Schema.from_json(recorded, "an old schema.json").bm25 == Bm25Settings(normalize=False)
    assert Schema.from_json(Schema(model="m", dim=8).to_json(), "a new one").bm25.normalize is True


def test_declared_payload_indexes_exist_in_the_edge_shard_and_the_schema(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection("docs", dim=8, model="m")
        store.upsert("docs", points(TEXTS))
        store.ensure_collection("docs", dim=8, model="m", options=CollectionOptions(indexes={"n": "integer"}))
        assert store.schema("docs").indexes == {"doc_id": "keyword", "source": "keyword", "n": "integer"}
        shard = store._engine._shard("docs")  # the engine's own view of its indexes
        assert sorted(shard.info().payload_schema) == ["doc_id", "n", "source"]
        assert store.count("docs", {"n": {"gte": 4}}) == 4
    with Store.open(path=tmp_path) as store:
        assert store.schema("docs").indexes["n"] == "integer"
    with pytest.raises(InputError, match="index 'n':'text'"):
        CollectionOptions(indexes={"n": "text"})


@pytest.mark.parametrize("engine", ENGINES)
def test_an_int8_quantized_collection_searches_with_rescoring(engine: str, tmp_path: Path):
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    with ENGINES[engine](tmp_path / "db") as store:
        for name, quantize in (("exact", None), ("int8", "int8")):
            store.ensure_collection(name, dim=32, model="m", options=CollectionOptions(quantize=quantize))
            store.upsert(
                name, [Point(point_id("d", i, str(i)), v, {"text": str(i)}) for i, v in enumerate(vectors)]
            )
            store.build_index(name)
        assert store.schema("int8").quantize == "int8"
        for query in rng.normal(size=(10, 32)):
            exact = store.search("exact", query, mode="dense", top_k=10)
            quantized = store.search("int8", query, mode="dense", top_k=10)
            assert [h.id for h in quantized[:3]] == [h.id for h in exact[:3]]
            # Rescored with the original vectors: the scores are cosines, not int8 approximations.
            assert [h.score for h in quantized[:3]] == pytest.approx([h.score for h in exact[:3]], abs=1e-5)


def test_an_embedded_cluster_option_is_refused_with_the_reason_new_collection_or_not(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        with pytest.raises(InputError, match="settings of a Qdrant cluster"):
            store.ensure_collection("docs", dim=8, model="m", options=CollectionOptions(shards=3))
        assert store.collections() == []
        store.ensure_collection("docs", dim=8, model="m")
        with pytest.raises(InputError, match="settings of a Qdrant cluster"):
            store.ensure_collection("docs", dim=8, model="m", options=CollectionOptions(replicas=2))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unusable_bm25_language_is_refused_before_the_collection_exists(engine: str, tmp_path: Path):
    klingon = CollectionOptions(bm25=Bm25Settings(language="klingon"))
    with ENGINES[engine](tmp_path / "db") as store:
        with pytest.raises(InputError, match="collection 'docs': BM25 settings .* unsupported language"):
            store.ensure_collection("docs", dim=8, model="m", options=klingon)
        assert store.collections() == []  # nothing recorded that every later write would trip over


@pytest.mark.parametrize("engine", ENGINES)
def test_quantization_asked_of_an_existing_collection_must_match_it(engine: str, tmp_path: Path):
    with ENGINES[engine](tmp_path / "db") as store:
        store.ensure_collection("docs", dim=8, model="m")
        with pytest.raises(InputError, match="built with quantize=None, not int8"):
            store.ensure_collection("docs", dim=8, model="m", options=CollectionOptions(quantize="int8"))
        store.ensure_collection("int8", dim=8, model="m", options=CollectionOptions(quantize="int8"))
        store.ensure_collection("int8", dim=8, model="m", options=CollectionOptions(quantize="int8"))
        store.ensure_collection("int8", dim=8, model="m")  # not asked: nothing to check
        assert store.schema("int8").quantize == "int8"


def test_a_tenant_index_is_a_keyword_index_marked_is_tenant(tmp_path: Path):
    with Store.open(path=tmp_path) as store:
        store.ensure_collection(
            "docs", dim=8, model="m", options=CollectionOptions(indexes={"tenant": "tenant"})
        )
        tenants = [
            Point(p.id, p.vector, p.payload | {"tenant": f"t{i % 3}"}) for i, p in enumerate(points(TEXTS))
        ]
        store.upsert("docs", tenants)
        index = store._engine._shard("docs").info().payload_schema["tenant"]
        assert index.params.is_tenant is True
        assert store.count("docs", {"tenant": "t1"}) == 3


def test_bm25_length_counts_the_terms_kept_so_avg_len_is_in_terms_not_words():
    settings = Bm25Settings(k=1.2, b=0.75, avg_len=4.0)
    # Three terms, and the same three among five stop words: the same length, so the same weights.
    kept = document_vector(settings, "vacuum reclaims storage")
    assert document_vector(settings, "the vacuum of a reclaims and the storage") == kept
    # BM25's term-frequency weight for tf = 1 in a text of length 3 terms, against avg_len = 4.
    length_norm = 1 - settings.b + settings.b * 3 / settings.avg_len
    assert kept.values == pytest.approx([(settings.k + 1) / (1 + settings.k * length_norm)] * 3)
