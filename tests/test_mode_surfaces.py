"""The search mode (dense, sparse BM25, hybrid) reaches every surface that searches: `kit.search` and
`kit.asearch`, the LangChain and LlamaIndex retrievers, both query engines, `ragkit search|query --mode`,
the search page's mode selector, and `ragkit eval --mode`, whose runs over one `--store` embed the corpus
once. Hybrid's fusion (`fusion="dbsf"`, `--fusion dbsf`, `"fusion": "dbsf"`, the page's fusion selector)
reaches the same surfaces.

The collection is six one-section documents, ingested for real (minilm, embedded Qdrant). One of them, a
garden shed's inventory, holds the invented part code "zqxvort": BM25 finds that word in that section
only, while the code means nothing to the encoder. So for the query "zqxvort" the three modes answer
visibly differently (one BM25 hit; cosines over every section; a fused list, at most 2/RRF_K, that the
shed leads because it is in both lists), and a surface that dropped the mode would answer in the default
mode, hybrid, and fail the dense and sparse cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from llama_index.core.llms import MockLLM

import ragkit
from ragkit.cli import main
from ragkit.errors import InputError
from ragkit.kit import Kit
from ragkit.server import KeyRing, ServerConfig, create_app
from ragkit.store.schema import RRF_K
from tests.browsing import chromium, needs_chromium
from tests.serving import ADMIN_KEY, running, write_keys

MODES = ("dense", "sparse", "hybrid")
FLOAT32 = 1e-6  # scores come back as float32: 2/RRF_K is 0.20000000298...
COLLECTION = "shelf"
QUERY = "zqxvort"
TOP_K = 4  # of six sections: dense and hybrid rank some, not all
SHED = "Garden shed inventory"
DOCUMENTS = {
    "shed.md": (
        SHED,
        "The shed holds a push lawnmower, two rakes, a wheelbarrow with a flat tyre and a box of plant "
        "labels. The spare mower blade is filed in the ledger under the part code zqxvort, next to the "
        "receipt for the hedge trimmer and the winter cover of the garden bench.",
    ),
    "bread.md": (
        "Sourdough bread",
        "A sourdough starter is a culture of wild yeast and lactic acid bacteria living in flour and "
        "water. Feed it equal weights of flour and water every day and keep it where it can double in "
        "size before the dough is mixed.",
    ),
    "comets.md": (
        "Comet tails",
        "Near the Sun a comet's ice turns to gas and forms a glowing coma. Sunlight pushes dust into a "
        "curved yellow tail, and the solar wind blows ionised gas into a straight blue tail pointing away "
        "from the Sun.",
    ),
    "trains.md": (
        "Railway signalling",
        "A railway line is divided into block sections, and only one train may occupy a block at a time. "
        "A signal at the entrance of each block shows red while the block ahead is occupied by a train.",
    ),
    "chess.md": (
        "The Sicilian Defence",
        "After the first moves e4 and c5 Black fights for the centre from the side and accepts an "
        "unbalanced position. The Najdorf variation was the favourite weapon of Fischer and Kasparov.",
    ),
    "orchids.md": (
        "Watering orchids",
        "Water orchids when the bark mix is almost dry and the roots turn silvery grey. Soak the pot for "
        "ten minutes and let it drain completely, because standing water rots the roots.",
    ),
}


@dataclass(frozen=True)
class Shelf:
    kit: Kit
    store: Path
    shed: str  # the point id of the shed's section


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shelf]:
    root = tmp_path_factory.mktemp("shelf")
    docs = root / "docs"
    docs.mkdir()
    for name, (title, body) in DOCUMENTS.items():
        (docs / name).write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    kit = ragkit.open(COLLECTION, store=root / "store", model="minilm", device="cpu")
    try:
        report = kit.ingest(docs, workers=0)
        assert report.ok, report.summary()
        titles = {pid: payload["title"] for pid, payload in kit.store.scroll_payloads(COLLECTION, ["title"])}
        assert sorted(titles.values()) == sorted(title for title, _ in DOCUMENTS.values()), "one section each"
        yield Shelf(kit, root / "store", next(pid for pid, title in titles.items() if title == SHED))
    finally:
        kit.close()


@pytest.fixture(scope="module")
def expected(shelf: Shelf) -> dict[str, list[tuple[str, float]]]:
    """Each mode's answer to QUERY straight from the store: (point id, score), best first."""
    vector = shelf.kit.encoder.encode([QUERY], truncate=True)[0]
    return {
        mode: [
            (hit.id, hit.score)
            for hit in shelf.kit.store.search(COLLECTION, vector, mode=mode, text=QUERY, top_k=TOP_K)
        ]
        for mode in MODES
    }


@pytest.fixture
def store_copy(shelf: Shelf, tmp_path: Path) -> list[str]:
    """Store flags for a copy of the store, which the CLI can open while the module's kit holds the original."""
    copy = shutil.copytree(shelf.store, tmp_path / "store")
    return ["--store", str(copy), "--collection", COLLECTION]


def assert_answers(pairs: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [pid for pid, _ in pairs] == [pid for pid, _ in expected]
    assert [score for _, score in pairs] == pytest.approx([score for _, score in expected], rel=1e-5)


# kit.search: what each mode means


def test_each_mode_ranks_the_identifier_query_by_its_own_measure(shelf: Shelf) -> None:
    kit = shelf.kit
    dense, sparse, hybrid = (kit.search(QUERY, top_k=TOP_K, mode=mode) for mode in MODES)

    # Sparse: BM25 finds the word in the shed's section and nowhere else; its score is no cosine.
    assert [hit.id for hit in sparse] == [shelf.shed]
    assert sparse[0].metadata["title"] == SHED and QUERY in sparse[0].text
    assert sparse[0].score > 0

    # Dense: the cosine of the query's embedding with every stored vector, computed here with NumPy.
    query = kit.encoder.encode([QUERY], truncate=True)[0]
    cosines = {
        pid: float(np.dot(query, vectors["dense"]) / np.linalg.norm(query) / np.linalg.norm(vectors["dense"]))
        for pid, _, vectors in kit.store.scroll_points(COLLECTION)
    }
    by_cosine = sorted(cosines, key=cosines.__getitem__, reverse=True)
    assert [hit.id for hit in dense] == by_cosine[:TOP_K]
    assert [hit.score for hit in dense] == pytest.approx(
        [cosines[pid] for pid in by_cosine[:TOP_K]], abs=1e-4
    )
    assert all(-1 <= hit.score <= 1 for hit in dense)

    # Hybrid: reciprocal-rank fusion of both lists; the shed, in both, leads with more than 1/RRF_K.
    fused = {pid: 1 / (RRF_K + rank) for rank, pid in enumerate(by_cosine)}
    fused[shelf.shed] += 1 / RRF_K
    by_fused = sorted(fused, key=fused.__getitem__, reverse=True)
    assert [hit.id for hit in hybrid] == by_fused[:TOP_K]
    assert hybrid[0].id == shelf.shed
    assert [hit.score for hit in hybrid] == pytest.approx([fused[pid] for pid in by_fused[:TOP_K]], rel=1e-5)
    assert 1 / RRF_K < hybrid[0].score <= 2 / RRF_K + FLOAT32

    answers = {tuple((hit.id, round(hit.score, 6)) for hit in hits) for hits in (dense, sparse, hybrid)}
    assert len(answers) == 3, "the three modes answer differently"


@pytest.mark.parametrize("mode", MODES)
def test_search_and_asearch_answer_in_the_mode_asked(shelf: Shelf, expected: dict, mode: str) -> None:
    found = shelf.kit.search(QUERY, top_k=TOP_K, mode=mode)
    assert_answers([(hit.id, hit.score) for hit in found], expected[mode])
    awaited = asyncio.run(shelf.kit.asearch(QUERY, top_k=TOP_K, mode=mode))
    assert_answers([(hit.id, hit.score) for hit in awaited], expected[mode])


def test_the_default_mode_is_hybrid(shelf: Shelf, expected: dict) -> None:
    assert_answers([(hit.id, hit.score) for hit in shelf.kit.search(QUERY, top_k=TOP_K)], expected["hybrid"])


# The adapters and the query engines


@pytest.mark.parametrize("mode", MODES)
def test_langchain_retriever_searches_in_its_mode(shelf: Shelf, expected: dict, mode: str) -> None:
    retriever = shelf.kit.as_langchain_retriever(k=TOP_K, mode=mode)
    for documents in (retriever.invoke(QUERY), asyncio.run(retriever.ainvoke(QUERY))):
        assert_answers([(d.id, d.metadata["score"]) for d in documents], expected[mode])


@pytest.mark.parametrize("mode", MODES)
def test_llamaindex_retriever_searches_in_its_mode(shelf: Shelf, expected: dict, mode: str) -> None:
    retriever = shelf.kit.as_llamaindex_retriever(similarity_top_k=TOP_K, mode=mode)
    for nodes in (retriever.retrieve(QUERY), asyncio.run(retriever.aretrieve(QUERY))):
        assert_answers([(n.node.node_id, n.score) for n in nodes], expected[mode])


@pytest.mark.parametrize("mode", MODES)
def test_query_engine_cites_the_sections_of_its_mode(shelf: Shelf, expected: dict, mode: str) -> None:
    prompts: list[str] = []
    engine = shelf.kit.query_engine(
        llm=lambda prompt: prompts.append(prompt) or "answer", top_k=TOP_K, mode=mode
    )
    for response in (engine.query(QUERY), asyncio.run(engine.aquery(QUERY))):
        assert_answers([(s.id, s.score) for s in response.sources], expected[mode])
    # The prompt holds exactly the cited sections: in sparse mode, the shed alone.
    cited = [f"[{n}] " in prompts[0] for n in range(1, TOP_K + 2)]
    assert cited == [n <= len(expected[mode]) for n in range(1, TOP_K + 2)]


@pytest.mark.parametrize("mode", MODES)
def test_llamaindex_query_engine_retrieves_in_its_mode(shelf: Shelf, expected: dict, mode: str) -> None:
    engine = shelf.kit.as_llamaindex_query_engine(llm=MockLLM(), similarity_top_k=TOP_K, mode=mode)
    response = engine.query(QUERY)
    assert_answers([(n.node.node_id, n.score) for n in response.source_nodes], expected[mode])


SURFACES = {
    "search": lambda kit: kit.search(QUERY, mode="bm25"),
    "asearch": lambda kit: asyncio.run(kit.asearch(QUERY, mode="bm25")),
    "langchain": lambda kit: kit.as_langchain_retriever(mode="bm25").invoke(QUERY),
    "llamaindex": lambda kit: kit.as_llamaindex_retriever(mode="bm25").retrieve(QUERY),
    "query engine": lambda kit: kit.query_engine(llm=lambda prompt: "answer", mode="bm25").query(QUERY),
}


@pytest.mark.parametrize("surface", SURFACES)
def test_an_unknown_mode_is_refused_by_name_with_the_known_ones(shelf: Shelf, surface: str) -> None:
    with pytest.raises(InputError, match=r"search mode 'bm25' is unknown; use one of dense, sparse, hybrid"):
        SURFACES[surface](shelf.kit)


# The command line


@pytest.mark.parametrize("mode", MODES)
def test_cli_search_mode_flag(store_copy: list[str], expected: dict, mode: str, capsys) -> None:
    argv = ["search", QUERY, *store_copy, "--top-k", str(TOP_K), "--mode", mode, "--json"]
    assert main(argv) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert_answers([(hit["id"], hit["score"]) for hit in hits], expected[mode])


@pytest.mark.parametrize("mode", MODES)
def test_cli_query_mode_flag(store_copy: list[str], expected: dict, mode: str, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)  # the extractive answer, no server
    argv = ["query", QUERY, *store_copy, "--top-k", str(TOP_K), "--mode", mode, "--json"]
    assert main(argv) == 0
    sources = json.loads(capsys.readouterr().out)["sources"]
    assert_answers([(source["id"], source["score"]) for source in sources], expected[mode])


@pytest.mark.parametrize("command", ["search", "query", "eval"])
def test_cli_refuses_an_unknown_mode_naming_the_choices(command: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, QUERY if command != "eval" else str(tmp_path), "--mode", "bm25"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--mode: invalid choice: 'bm25'" in err and "'dense', 'sparse', 'hybrid'" in err


# The search page


@pytest.fixture(scope="module")
def page(shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The HTTP service over a copy of the shelf (the module's kit holds the original); yields its URL."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(shelf.store, root / "store")
    config = ServerConfig(
        collection=COLLECTION,
        store=str(root / "store"),
        model="minilm",
        device="cpu",
        keys=KeyRing.load(keys_file=write_keys(root)),
        work_dir=root / "work",
    )
    with running(create_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def search_in_mode(
    browser: object, base: str, query: str, mode: str, fusion: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """Pick the mode (and fusion), type key and query, press Enter; the status line and (breadcrumb,
    score) per hit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(base + "/")
    Select(browser.find_element(By.ID, "mode")).select_by_value(mode)
    if fusion is not None:
        Select(browser.find_element(By.ID, "fusion")).select_by_value(fusion)
    browser.find_element(By.ID, "api-key").send_keys(ADMIN_KEY)
    browser.find_element(By.ID, "query").send_keys(query, Keys.ENTER)
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.text and status.text != "Searching…")
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    shown = [
        (hit.find_element(By.CLASS_NAME, "breadcrumb").text, hit.find_element(By.CLASS_NAME, "score").text)
        for hit in hits
    ]
    return status.text, shown


def assert_page_shows(shown: list[tuple[str, str]], hits: list[dict]) -> None:
    """The page shows what the API answered, in its order, scores to three digits."""
    assert [crumb for crumb, _ in shown] == [" › ".join(h["metadata"]["breadcrumb"]) for h in hits]
    assert [float(score) for _, score in shown] == pytest.approx([h["score"] for h in hits], rel=5e-3)


@needs_chromium
def test_search_page_mode_selector_sends_the_mode_and_shows_its_scores(browser: object, page: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page + "/")
    selector = Select(browser.find_element(By.ID, "mode"))
    assert [option.get_attribute("value") for option in selector.options] == ["hybrid", "dense", "sparse"]
    assert selector.first_selected_option.get_attribute("value") == "hybrid"

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    shown = {}
    for mode in MODES:
        status, shown[mode] = search_in_mode(browser, page, QUERY, mode)
        api = httpx.post(
            f"{page}/v1/search", json={"query": QUERY, "top_k": 5, "mode": mode}, headers=headers
        )
        hits = api.json()["hits"]
        assert status == f"{len(hits)} result{'s' if len(hits) > 1 else ''}"
        assert_page_shows(shown[mode], hits)

    assert shown["sparse"] == [(SHED, shown["sparse"][0][1])] and float(shown["sparse"][0][1]) > 0
    assert len(shown["dense"]) == len(shown["hybrid"]) == 5
    assert all(-1 <= float(score) <= 1 for _, score in shown["dense"])
    assert shown["hybrid"][0][0] == SHED
    assert all(float(score) <= 2 / RRF_K + FLOAT32 for _, score in shown["hybrid"])


@needs_chromium
def test_search_page_fusion_selector_sends_dbsf_in_hybrid_mode_only(browser: object, page: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page + "/")
    fusion = browser.find_element(By.ID, "fusion")
    assert [option.get_attribute("value") for option in Select(fusion).options] == ["rrf", "dbsf"]
    assert Select(fusion).first_selected_option.get_attribute("value") == "rrf"
    assert fusion.is_enabled(), "hybrid is the default mode"
    Select(browser.find_element(By.ID, "mode")).select_by_value("dense")
    assert not fusion.is_enabled(), "only hybrid fuses"

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    api = httpx.post(
        f"{page}/v1/search", json={"query": QUERY, "top_k": 5, "fusion": "dbsf"}, headers=headers, timeout=60
    )
    hits = api.json()["hits"]
    _, shown = search_in_mode(browser, page, QUERY, "hybrid", fusion="dbsf")
    assert_page_shows(shown, hits)
    assert float(shown[0][1]) > 2 / RRF_K, "a DBSF score, above any RRF score"


# ragkit eval --mode over one --store

# Three judged queries: the part code (BM25's case), a paraphrase that shares words with its document,
# and one that shares none with any document, which BM25 cannot rank at all.
EVAL_QUERIES = {
    "q-code": (QUERY, "shed"),
    "q-tail": ("Why does the tail of a comet point away from the Sun?", "comets"),
    "q-soggy": ("Which houseplant hates soggy feet?", "orchids"),
}


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`ragkit eval DATASET --store DIR --mode M --json` for dense, then sparse, then hybrid; then hybrid
    with `--fusion dbsf`, keyed "dbsf"."""
    dataset = tmp_path_factory.mktemp("beir")
    (dataset / "qrels").mkdir()
    corpus = [{"_id": name.removesuffix(".md"), "title": t, "text": b} for name, (t, b) in DOCUMENTS.items()]
    queries = [{"_id": qid, "text": text} for qid, (text, _) in EVAL_QUERIES.items()]
    qrels = ["query-id\tcorpus-id\tscore", *(f"{qid}\t{doc}\t1" for qid, (_, doc) in EVAL_QUERIES.items())]
    (dataset / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (dataset / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (dataset / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    store = tmp_path_factory.mktemp("evalstore")
    runs = {}
    for key, mode, fusion in [
        *((mode, mode, []) for mode in MODES),
        ("dbsf", "hybrid", ["--fusion", "dbsf"]),
    ]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            argv = [
                "eval",
                str(dataset),
                "--model",
                "minilm",
                "--store",
                str(store),
                "--mode",
                mode,
                *fusion,
                "--json",
            ]
            assert main(argv) == 0
        runs[key] = json.loads(out.getvalue())
    return runs


def test_eval_in_three_modes_over_one_store_embeds_the_corpus_once(eval_runs: dict[str, dict]) -> None:
    dense, sparse, hybrid = (eval_runs[mode] for mode in MODES)
    assert [run["mode"] for run in (dense, sparse, hybrid)] == list(MODES)
    assert dense["units"] == len(DOCUMENTS)
    assert dense["units_embedded"] == dense["units"] and dense["tokens_embedded"] > 0
    for later in (sparse, hybrid):
        assert later["collection"] == dense["collection"]
        assert (later["units_embedded"], later["units_reused"], later["tokens_embedded"]) == (
            0,
            dense["units"],
            0,
        )


def test_eval_figures_are_those_of_the_mode(eval_runs: dict[str, dict]) -> None:
    for run in eval_runs.values():
        assert set(run["metrics"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert all(0 <= value <= 1 for value in run["metrics"].values())
    # Dense and hybrid rank all six documents for every query; BM25 ranks none for the query that shares
    # no word with the corpus, so sparse alone misses a relevant document.
    assert eval_runs["dense"]["metrics"]["recall@10"] == eval_runs["hybrid"]["metrics"]["recall@10"] == 1.0
    assert eval_runs["sparse"]["metrics"]["recall@10"] == pytest.approx(2 / 3)
    assert eval_runs["sparse"]["metrics"] != eval_runs["dense"]["metrics"]


def test_sparse_eval_reports_no_short_rankings_when_the_search_limit_was_not_reached(
    eval_runs: dict[str, dict],
) -> None:
    sparse = eval_runs["sparse"]
    assert sparse["units"] < 1000
    assert sparse["short_rankings"] == 0
    assert not any("search limit" in note for note in sparse["notes"])


# The fusion of hybrid mode (RRF by default, DBSF when asked) on every surface


@pytest.fixture(scope="module")
def dbsf(shelf: Shelf, expected: dict) -> list[tuple[str, float]]:
    """Hybrid's answer to QUERY with distribution-based fusion, straight from the store."""
    vector = shelf.kit.encoder.encode([QUERY], truncate=True)[0]
    found = shelf.kit.store.search(COLLECTION, vector, mode="hybrid", fusion="dbsf", text=QUERY, top_k=TOP_K)
    return [(hit.id, hit.score) for hit in found]


def test_dbsf_fuses_by_normalised_score_not_by_rank(shelf: Shelf, expected: dict, dbsf: list) -> None:
    # DBSF sums each list's scores normalised by that list's spread: no 1/(k + rank) bound holds, and the
    # answer is not RRF's, so a surface that dropped the fusion would answer RRF's scores and fail below.
    assert dbsf[0][0] == shelf.shed, "the shed is in both lists"
    assert dbsf[0][1] > 2 / RRF_K
    assert [score for _, score in dbsf] != pytest.approx([score for _, score in expected["hybrid"]], rel=1e-3)
    assert_answers([(h.id, h.score) for h in shelf.kit.search(QUERY, top_k=TOP_K)], expected["hybrid"])


FUSED = {
    "search": lambda kit: [(h.id, h.score) for h in kit.search(QUERY, top_k=TOP_K, fusion="dbsf")],
    "asearch": lambda kit: [
        (h.id, h.score) for h in asyncio.run(kit.asearch(QUERY, top_k=TOP_K, fusion="dbsf"))
    ],
    "langchain": lambda kit: [
        (d.id, d.metadata["score"]) for d in kit.as_langchain_retriever(k=TOP_K, fusion="dbsf").invoke(QUERY)
    ],
    "llamaindex": lambda kit: [
        (n.node.node_id, n.score)
        for n in kit.as_llamaindex_retriever(similarity_top_k=TOP_K, fusion="dbsf").retrieve(QUERY)
    ],
    "query engine": lambda kit: [
        (s.id, s.score)
        for s in kit.query_engine(llm=lambda prompt: "answer", top_k=TOP_K, fusion="dbsf")
        .query(QUERY)
        .sources
    ],
    "llamaindex query engine": lambda kit: [
        (n.node.node_id, n.score)
        for n in kit.as_llamaindex_query_engine(llm=MockLLM(), similarity_top_k=TOP_K, fusion="dbsf")
        .query(QUERY)
        .source_nodes
    ],
}


@pytest.mark.parametrize("surface", FUSED)
def test_every_python_surface_passes_the_fusion_on(shelf: Shelf, dbsf: list, surface: str) -> None:
    assert_answers(FUSED[surface](shelf.kit), dbsf)


@pytest.mark.parametrize("surface", ["search", "langchain", "query engine"])
def test_an_unknown_fusion_is_refused_by_name_with_the_known_ones(shelf: Shelf, surface: str) -> None:
    calls = {
        "search": lambda kit: kit.search(QUERY, fusion="max"),
        "langchain": lambda kit: kit.as_langchain_retriever(fusion="max").invoke(QUERY),
        "query engine": lambda kit: kit.query_engine(llm=lambda p: "answer", fusion="max").query(QUERY),
    }
    with pytest.raises(InputError, match=r"fusion 'max' is unknown; use one of rrf, dbsf"):
        calls[surface](shelf.kit)


@pytest.mark.parametrize("command", ["search", "query"])
def test_cli_fusion_flag(store_copy: list[str], dbsf: list, command: str, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RAGKIT_LLM_URL", raising=False)
    argv = [command, QUERY, *store_copy, "--top-k", str(TOP_K), "--fusion", "dbsf", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert_answers(
        [(hit["id"], hit["score"]) for hit in out["hits" if command == "search" else "sources"]], dbsf
    )


@pytest.mark.parametrize(
    ("command", "mode", "fusion"),
    [
        ("search", "dense", "dbsf"),
        ("query", "sparse", "dbsf"),
        ("eval", "dense", "dbsf"),
        ("search", "sparse", "rrf"),
    ],
)
def test_cli_refuses_a_fusion_typed_with_dense_or_sparse_mode_naming_both_flags(
    command: str, mode: str, fusion: str, tmp_path: Path, capsys
) -> None:
    # Dense and sparse search one list and fuse nothing: the flag was ignored in silence. Typed with its
    # default value it is refused too, as it still says that hybrid was meant.
    first = QUERY if command != "eval" else str(tmp_path)
    argv = [command, first, "--store", str(tmp_path / "store"), "--mode", mode, "--fusion", fusion]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"--fusion {fusion} applies to --mode hybrid only" in err
        and f"--mode {mode} searches one list" in err
    )
    assert not (tmp_path / "store").exists(), "refused before the store is opened"


def test_cli_takes_a_fusion_typed_with_hybrid_mode(store_copy: list[str], dbsf: list, capsys) -> None:
    argv = [
        "search",
        QUERY,
        *store_copy,
        "--top-k",
        str(TOP_K),
        "--mode",
        "hybrid",
        "--fusion",
        "dbsf",
        "--json",
    ]
    assert main(argv) == 0
    assert_answers([(hit["id"], hit["score"]) for hit in json.loads(capsys.readouterr().out)["hits"]], dbsf)


REFUSED_FUSIONS = {
    "search": lambda kit, mode: kit.search(QUERY, mode=mode, fusion="dbsf"),
    "asearch": lambda kit, mode: asyncio.run(kit.asearch(QUERY, mode=mode, fusion="dbsf")),
    "langchain": lambda kit, mode: kit.as_langchain_retriever(mode=mode, fusion="dbsf").invoke(QUERY),
    "query engine": lambda kit, mode: kit.query_engine(
        llm=lambda p: "answer", mode=mode, fusion="dbsf"
    ).query(QUERY),
}


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("surface", REFUSED_FUSIONS)
def test_a_python_surface_refuses_dbsf_fusion_outside_hybrid_mode(
    shelf: Shelf, surface: str, mode: str
) -> None:
    with pytest.raises(InputError, match=rf"fusion='dbsf' applies to mode='hybrid' only.*mode='{mode}'"):
        REFUSED_FUSIONS[surface](shelf.kit, mode)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_the_default_fusion_passed_with_dense_or_sparse_mode_is_accepted(
    shelf: Shelf, expected: dict, mode: str
) -> None:
    # The adapters and query engines pass their fusion, the default, whatever their mode: it cannot be refused.
    hits = shelf.kit.search(QUERY, top_k=TOP_K, mode=mode, fusion="rrf")
    assert_answers([(hit.id, hit.score) for hit in hits], expected[mode])


@pytest.mark.parametrize("route", ["search", "query"])
def test_http_fusion_field(page: str, dbsf: list, route: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body = {"query": QUERY, "top_k": TOP_K, "fusion": "dbsf"}
    answer = httpx.post(f"{page}/v1/{route}", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    found = answer.json()["hits" if route == "search" else "sources"]
    assert_answers([(hit["id"], hit["score"]) for hit in found], dbsf)

    refused = httpx.post(f"{page}/v1/{route}", json=body | {"fusion": "max"}, headers=headers, timeout=60)
    assert refused.status_code == 422 and "fusion" in refused.text


def test_eval_ranks_documents_by_the_fusion_asked(shelf: Shelf, dbsf: list) -> None:
    from ragkit.evaluation.ranking import rank_documents

    vector = shelf.kit.encoder.encode([QUERY], truncate=True)[0]
    ranking, cut_short = rank_documents(
        shelf.kit.retriever(), vector, QUERY, top_k=TOP_K, points=6, documents=6, mode="hybrid", fusion="dbsf"
    )
    doc_of = {
        pid: payload["doc_id"] for pid, payload in shelf.kit.store.scroll_payloads(COLLECTION, ["doc_id"])
    }
    assert not cut_short
    assert list(ranking) == [doc_of[pid] for pid, _ in dbsf]
    assert list(ranking.values()) == pytest.approx([score for _, score in dbsf], rel=1e-5)


def test_eval_records_its_fusion_and_reuses_the_stored_vectors(
    eval_runs: dict[str, dict], tmp_path: Path
) -> None:
    assert [eval_runs[key]["fusion"] for key in (*MODES, "dbsf")] == ["rrf", "rrf", "rrf", "dbsf"]
    assert (eval_runs["dbsf"]["mode"], eval_runs["dbsf"]["units_embedded"]) == ("hybrid", 0)
    with pytest.raises(SystemExit) as exited:
        main(["eval", str(tmp_path), "--fusion", "max"])
    assert exited.value.code == 2
