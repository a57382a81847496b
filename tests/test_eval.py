"""`ragkit eval`: BEIR-layout datasets end to end with the real all-MiniLM-L6-v2, metrics against the
textbook formulas, LoCo's table and its offline message, and the errors a bad dataset folder gives."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import ir_measures
import pytest
from ir_measures import RR

import ragkit
from ragkit.cli import main
from ragkit.evaluation import DatasetError, load_beir, score
from ragkit.evaluation.chunks import chunk_text
from ragkit.evaluation.dataset import Document
from ragkit.evaluation.loco import CARD_AVERAGE, TASKS, _offline, _tasks_from_rows, select_tasks
from ragkit.evaluation.markdown import parsed_document
from ragkit.evaluation.ranking import best_per_document, rank_documents
from ragkit.evaluation.units import document_units
from ragkit.retrieval import Hit, Retriever
from ragkit.store import Hit as StoredHit

REPO = Path(__file__).resolve().parents[1]
LABELS = [["nDCG@10"], ["Recall@10"], ["Recall@100"], ["MRR@10"]]

# Eight long documents, each a title and markdown sections on one subject; every section is far from the
# others in vocabulary, so a query about one section has a clear right answer.
TOPICS = {
    "bees": (
        "A beekeeper's year",
        {
            "Spring inspection": "Open the hive on a warm spring afternoon and look for eggs, larvae and a laying queen. "
            "A colony without brood in April has lost its queen and needs a new one from another hive.",
            "Swarming": "When the hive runs out of room the old queen leaves with half of the worker bees in a swarm. "
            "Adding a super of empty frames in May gives the colony space and keeps the swarm at home.",
            "Honey harvest": "Honey is taken in late summer once the bees have capped the comb with wax. "
            "The frames are uncapped with a hot knife and spun in an extractor, then the honey is strained into jars.",
        },
    ),
    "volcano": (
        "Volcanoes of Iceland",
        {
            "Fissure eruptions": "Iceland sits on the Mid-Atlantic Ridge, where the crust splits apart and basalt lava "
            "pours from long fissures. The Laki fissure erupted for eight months in 1783 and poisoned livestock with fluorine.",
            "Glacier floods": "Eruptions beneath the Vatnajokull ice cap melt the glacier from below. "
            "The meltwater bursts out in a jokulhlaup, a flood that can wash away bridges and roads on the sandur plains.",
            "Ash and aviation": "In 2010 the ash cloud of Eyjafjallajokull closed European airspace for days. "
            "Fine glassy ash melts inside jet engines, so airlines avoid any sky where volcanic ash is forecast.",
        },
    ),
    "chess": (
        "Chess openings for club players",
        {
            "The Sicilian Defence": "After 1.e4 c5 Black fights for the centre from the side and accepts an unbalanced "
            "position. The Najdorf variation with 5...a6 was the favourite weapon of Fischer and Kasparov.",
            "The Queen's Gambit": "White offers the c-pawn with 1.d4 d5 2.c4 to pull Black's pawn away from the centre. "
            "Declining with 2...e6 leads to solid positions where both sides manoeuvre their pieces slowly.",
            "Endgame technique": "With few pieces left the king becomes a fighting piece and marches to the centre. "
            "Knowing the Lucena and Philidor rook endings turns many drawn positions into wins and many losses into draws.",
        },
    ),
    "bread": (
        "Baking sourdough bread",
        {
            "Feeding the starter": "A sourdough starter is a culture of wild yeast and lactic acid bacteria living in flour "
            "and water. Feed it equal weights of flour and water every day and keep it where it can double in size.",
            "Shaping the dough": "After the bulk fermentation, tip the dough onto the bench and fold its edges to the centre "
            "to build surface tension. A tight boule holds its shape in the banneton overnight in the fridge.",
            "Baking in a Dutch oven": "Bake the loaf inside a preheated cast-iron Dutch oven with the lid on for twenty minutes "
            "so the steam lets the crust expand, then remove the lid until the crust is deep brown.",
        },
    ),
    "trains": (
        "Railway signalling",
        {
            "Block sections": "A railway line is divided into block sections, and only one train may occupy a block at a time. "
            "A signal at the entrance of each block shows red while the block ahead is occupied.",
            "Interlocking": "An interlocking prevents a signalman from setting points and signals into conflicting routes. "
            "Early interlockings were mechanical levers; modern ones are computers that check every route before clearing a signal.",
            "Train protection": "Automatic train protection brakes a train that passes a red signal or runs too fast. "
            "The European Train Control System sends movement authorities to the cab over radio balises.",
        },
    ),
    "orchids": (
        "Growing orchids at home",
        {
            "Light and temperature": "Phalaenopsis moth orchids like bright indirect light from an east window. "
            "A drop of a few degrees at night in autumn triggers the plant to grow a new flower spike.",
            "Watering": "Water orchids when the bark mix is almost dry and the roots turn silvery grey. "
            "Soak the pot for ten minutes and let it drain completely, because standing water rots the roots.",
            "Repotting": "Repot an orchid every two years into fresh coarse bark once it has finished flowering. "
            "Trim dead brown roots with sterile scissors and keep the healthy green ones.",
        },
    ),
    "comets": (
        "Comets and where they come from",
        {
            "The Oort cloud": "Long-period comets fall towards the Sun from the Oort cloud, a shell of icy bodies far beyond "
            "Neptune. A passing star can nudge them into orbits that take thousands of years.",
            "Tails": "Near the Sun a comet's ice sublimates into a glowing coma. Sunlight pushes dust into a curved yellow tail, "
            "and the solar wind blows ionised gas into a straight blue ion tail pointing away from the Sun.",
            "Halley's comet": "Halley's comet returns every seventy-six years and was last seen from Earth in 1986. "
            "The Giotto probe flew through its coma and photographed the dark potato-shaped nucleus.",
        },
    ),
    "pollination": (
        "Orchard pollination",
        {
            "Why fruit trees need insects": "Apple and cherry blossoms need pollen from another variety to set fruit. "
            "Honey bees carry the pollen between trees as they collect nectar from the flowers.",
            "Renting hives": "Fruit growers rent bee hives from beekeepers during the bloom, about two hives per acre of apples. "
            "The hives are moved into the orchard at night when the bees are inside.",
            "Wild pollinators": "Bumblebees and solitary mason bees fly in cold damp weather when honey bees stay at home. "
            "Hedgerows and nesting blocks near the orchard keep wild pollinators on the farm.",
        },
    ),
}
FILLER = (
    "This part of the guide was revised after readers wrote in with questions and corrections. "
    "Each chapter can be read on its own, and the index at the back lists every term that is explained."
)
QUERIES = {
    "q-queen": ("What does it mean when a hive has no brood in spring?", {"bees": 2}),
    "q-ash": ("Why did volcanic ash from Eyjafjallajokull close airspace?", {"volcano": 2}),
    "q-najdorf": ("Which Sicilian variation did Fischer and Kasparov play?", {"chess": 2}),
    "q-starter": ("How often should a sourdough starter be fed flour and water?", {"bread": 2}),
    "q-block": ("Why may only one train occupy a block section?", {"trains": 2}),
    "q-orchid-water": ("When should I water my orchid and how do I avoid root rot?", {"orchids": 2}),
    "q-tail": ("Why does a comet have a dust tail and an ion tail?", {"comets": 2}),
    "q-pollen": (
        "How do honey bees pollinate apple trees in an orchard?",
        {"pollination": 2, "bees": 1},
    ),
    "q-rent": (
        "How many bee hives per acre do fruit growers rent during bloom?",
        {"pollination": 2, "bees": 1},
    ),
    "q-halley": ("When did Halley's comet last pass Earth?", {"comets": 2}),
}


def write_beir(
    folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]]
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    rows = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in qrels)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def document_text(sections: dict[str, str]) -> str:
    return "\n\n".join(f"## {heading}\n\n{body}\n\n{FILLER} {FILLER}" for heading, body in sections.items())


@pytest.fixture(scope="module")
def easy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = [
        {"_id": key, "title": title, "text": document_text(sections)}
        for key, (title, sections) in TOPICS.items()
    ]
    queries = [{"_id": qid, "text": text} for qid, (text, _) in QUERIES.items()]
    qrels = [(qid, doc, grade) for qid, (_, relevant) in QUERIES.items() for doc, grade in relevant.items()]
    return write_beir(tmp_path_factory.mktemp("easy"), corpus, queries, qrels)


@pytest.fixture(scope="module")
def section_run(easy_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The command line's --json output for whole sections, kept in a store a later test reopens."""
    store = tmp_path_factory.mktemp("store")
    return _cli_json(["eval", str(easy_dataset), "--model", "minilm", "--store", str(store)]), store


def _cli_json(argv: list[str]) -> dict:
    capture = _Capture()
    with capture:
        assert main([*argv, "--json"]) == 0
    return json.loads(capture.out)


class _Capture:
    """stdout of an in-process `main` (pytest's capsys is function-scoped; module fixtures need this)."""

    def __enter__(self) -> None:
        import io

        self._saved, sys.stdout = sys.stdout, io.StringIO()

    def __exit__(self, *exc: object) -> None:
        self.out = sys.stdout.getvalue()
        sys.stdout = self._saved


# -- end to end -------------------------------------------------------------------------------------


def test_whole_sections_find_the_relevant_documents(section_run: tuple[dict, Path]) -> None:
    result, _ = section_run
    assert result["schema"] == "ragkit.eval/1"
    assert result["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (result["strategy"], result["max_tokens"], result["chunk_tokens"]) == ("section", 256, None)
    assert (result["documents"], result["queries"]) == (len(TOPICS), len(QUERIES))
    assert result["units"] > result["documents"], "each long document is cut into several sections"
    assert result["units_embedded"] == result["units"] and result["units_reused"] == 0
    assert result["tokens_embedded"] > 0 and result["tokens_per_second"] > 0
    assert result["short_rankings"] == 0
    metrics = result["metrics"]
    assert set(metrics) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert metrics["ndcg@10"] > 0.85
    assert metrics["mrr@10"] > 0.85
    # Eight documents, top-k 100: every document is ranked for every query.
    assert metrics["recall@10"] == metrics["recall@100"] == 1.0


def test_fixed_size_chunks_are_the_alternative_and_their_size_is_clamped_to_the_model(
    easy_dataset: Path,
) -> None:
    result = _cli_json(
        ["eval", str(easy_dataset), "--model", "minilm", "--strategy", "chunk", "--chunk-tokens", "1000"]
    )
    assert (result["strategy"], result["max_tokens"], result["chunk_tokens"]) == ("chunk", 256, 1000)
    assert any("--chunk-tokens 1000 is over the model's limit of 256 tokens" in n for n in result["notes"])
    assert result["units"] > result["documents"], "each long document spans several windows"
    assert result["metrics"]["ndcg@10"] > 0.7


def test_a_kept_store_is_reused_instead_of_embedding_again(
    easy_dataset: Path, section_run: tuple[dict, Path]
) -> None:
    first, store = section_run
    again = _cli_json(["eval", str(easy_dataset), "--model", "minilm", "--store", str(store)])
    assert (again["units_embedded"], again["units_reused"], again["tokens_embedded"]) == (
        0,
        first["units"],
        0,
    )
    assert again["collection"] == first["collection"]
    assert again["metrics"] == pytest.approx(first["metrics"])


def test_text_output_reports_timings_and_metrics(
    easy_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(easy_dataset), "--model", "minilm", "--top-k", "10"]) == 0
    out = capsys.readouterr().out
    assert "embedding  " in out and "tokens/s" in out and "queries/s" in out
    metric_lines = [line.split() for line in out.splitlines() if line.split()[:1] in LABELS]
    assert [name for name, _ in metric_lines] == ["nDCG@10", "Recall@10", "Recall@100", "MRR@10"]
    assert all(0 <= float(value) <= 1 for _, value in metric_lines)
    assert "note: --top-k 10 < 100: Recall@100 counts only the top 10" in out


def test_eval_refuses_a_collection_of_ingested_documents_and_leaves_it_whole(
    easy_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eval deletes the points no unit of its dataset has; among ingested documents that is all of them."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for topic in ("tomatoes", "roses", "leeks"):
        (docs / f"{topic}.md").write_text(f"# {topic}\n\nGrowing {topic} in a small garden.\n")
    store = tmp_path / "store"
    with ragkit.open("documents", store=store, model="minilm", device="cpu") as kit:
        kit.ingest([docs], workers=0)

    argv = ["eval", str(easy_dataset), "--model", "minilm", "--store", str(store)]
    assert main([*argv, "--collection", "documents"]) == 2
    err = capsys.readouterr().err
    assert "collection 'documents'" in err and "holds 3 points that ragkit eval did not write" in err
    assert "pass --collection a new name" in err
    with ragkit.open("documents", store=store) as kit:
        assert kit.info().points == 3


def test_an_eval_collection_follows_its_dataset_and_drops_its_own_stale_points(
    easy_dataset: Path, tmp_path: Path
) -> None:
    """The refusal above leaves eval free to converge a collection it wrote itself, named or not."""
    store = tmp_path / "store"
    named = ["--model", "minilm", "--store", str(store), "--collection", "mine"]
    first = _cli_json(["eval", str(easy_dataset), *named])
    smaller = write_beir(
        tmp_path / "smaller",
        [{"_id": "bees", "title": TOPICS["bees"][0], "text": document_text(TOPICS["bees"][1])}],
        [{"_id": "q-queen", "text": QUERIES["q-queen"][0]}],
        [("q-queen", "bees", 2)],
    )
    again = _cli_json(["eval", str(smaller), *named])
    assert again["units_embedded"] == 0 and again["units_reused"] == again["units"] < first["units"]
    removed = first["units"] - again["units"]
    assert f"removed {removed} points of collection 'mine' that no current unit has" in again["notes"]


# -- metrics against the formulas ---------------------------------------------------------------------


def dcg(gains: list[int]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, 1))


def test_metrics_match_the_textbook_formulas_for_a_fixed_ranking() -> None:
    qrels = {
        "a": {"d1": 2, "d3": 1, "d9": 1},  # graded; d9 is never retrieved
        "b": {"d5": 1},  # first relevant document at rank 11: outside every @10 cut-off
        "c": {"d2": 1},  # the run has nothing for c: it counts as 0, not as a missing query
        "z": {"d1": 0},  # no relevant document: not a judged query
    }
    run = {
        "a": {"d3": 0.9, "d4": 0.8, "d1": 0.7, "d6": 0.1},
        "b": {f"x{i}": 1 - i / 100 for i in range(10)} | {"d5": 0.05},
    }
    ranked_a = [1, 0, 2, 0]  # grades of d3, d4, d1, d6
    ndcg_a = dcg(ranked_a) / dcg([2, 1, 1])
    expected = {
        "ndcg@10": (ndcg_a + 0 + 0) / 3,
        "recall@10": (2 / 3 + 0 + 0) / 3,
        "recall@100": (2 / 3 + 1 + 0) / 3,
        "mrr@10": (1 / 1 + 0 + 0) / 3,
    }
    assert score(qrels, run) == pytest.approx(expected)


@pytest.mark.parametrize(("relevant", "tied", "rank"), [("a", "b", 2), ("b", "a", 1)])
def test_every_metric_ranks_tied_documents_as_trec_eval_does(relevant: str, tied: str, rank: int) -> None:
    """One relevant document tied with another: trec_eval puts the higher document id first, and nDCG@10,
    Recall@10 and MRR@10 must all describe that one rank, whichever provider ir-measures picks for each."""
    qrels, run = {"q": {relevant: 1}}, {"q": {relevant: 0.1, tied: 0.1}}
    assert ir_measures.calc_aggregate([RR], qrels, run)[RR] == 1 / rank  # trec_eval's own (pytrec_eval)
    assert score(qrels, run) == pytest.approx(
        {"ndcg@10": 1 / math.log2(rank + 1), "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1 / rank}
    )


def test_a_document_scores_as_its_best_section() -> None:
    hits = [
        Hit("1", 0.9, "", {"doc_id": "a"}),
        Hit("2", 0.8, "", {"doc_id": "b"}),
        Hit("3", 0.7, "", {"doc_id": "a"}),
        Hit("4", 0.95, "", {"doc_id": "c"}),
        Hit("5", 0.1, "", {"doc_id": "d"}),
    ]
    assert best_per_document(hits, top_k=3) == {"c": 0.95, "a": 0.9, "b": 0.8}
    assert list(best_per_document(hits, top_k=3)) == ["c", "a", "b"]


class _OneLongDocument:
    """Stands in for a store where document d0 has 20 sections that all outrank d1..d9's one each."""

    collection = "c"

    def __init__(self) -> None:
        self.store = self
        self.limits: list[int] = []
        self.hits = [StoredHit(f"s{i}", 1 - i / 100, {"doc_id": "d0"}) for i in range(20)]
        self.hits += [StoredHit(f"t{d}", 0.5 - d / 100, {"doc_id": f"d{d}"}) for d in range(1, 10)]

    def search(self, collection: str, vector: object, *, top_k: int, **_: object) -> list[StoredHit]:
        self.limits.append(top_k)
        return self.hits[:top_k]


def test_search_widens_until_it_has_k_documents() -> None:
    collection = _OneLongDocument()
    retriever = Retriever(encoder=None, store=collection, collection="c")  # type: ignore[arg-type]
    ranking, cut_short = rank_documents(retriever, [1.0], "q", top_k=3, points=29, documents=10, mode="dense")
    assert ranking == {"d0": 1.0, "d1": pytest.approx(0.49), "d2": pytest.approx(0.48)} and not cut_short
    # First guess: 3 documents x 2.9 sections per document; then doubling, capped at the collection.
    assert collection.limits == [9, 18, 29]


# -- cutting documents --------------------------------------------------------------------------------


def test_markdown_headings_become_section_headings_but_not_inside_code() -> None:
    text = "Intro line.\n\n# Setup\nInstall it.\n\n## Details\n```sh\n# a comment\nrun\n```\nAfter."
    doc = parsed_document(Document("x", " A  title ", text))
    assert doc.title == "A title"
    assert [(e.kind, e.text, e.level) for e in doc.elements] == [
        ("text", "Intro line.", None),
        ("heading", "Setup", 1),
        ("text", "Install it.", None),
        ("heading", "Details", 2),
        ("code", "```sh\n# a comment\nrun\n```", None),
        ("text", "After.", None),
    ]


@pytest.mark.parametrize("body", ["", "  \n\n "])
def test_a_document_of_a_title_alone_is_its_title_for_both_strategies(minilm_path: Path, body: str) -> None:
    """Dropping it from sections but embedding it as a chunk would score the strategies on two corpora."""
    from ragkit.encoder.checkpoint import load_tokenizer
    from ragkit.encoder.tokens import TokenCounter

    count = TokenCounter(load_tokenizer(minilm_path))
    doc = Document("x", " Pruning tomato  plants ", body)
    for strategy in ("section", "chunk"):
        units = document_units(doc, strategy, count, 256)
        # The encoder and BM25 read words: the title once, as a chunk of the bare title would give it.
        assert [(u.text, u.embed_text.split(), u.title) for u in units] == [
            ("Pruning tomato plants", ["Pruning", "tomato", "plants"], "Pruning tomato plants")
        ], strategy
    assert document_units(Document("y", " ", body), "section", count, 256) == []


def test_chunks_are_word_aligned_windows_within_the_limit(minilm_path: Path) -> None:
    from ragkit.encoder.checkpoint import load_tokenizer
    from ragkit.encoder.tokens import TokenCounter

    count = TokenCounter(load_tokenizer(minilm_path))
    text = " ".join(f"word{i} is followed by punctuation, (and more)." for i in range(200)) + " " + "z" * 3000
    chunks = chunk_text(text, count, 50)
    assert len(chunks) > 10
    assert all(chunk.tokens <= 50 and count([chunk.text])[0] == chunk.tokens for chunk in chunks)
    # In order, nothing lost or repeated; cuts fall between words, except inside the 3000-character "word".
    position = 0
    for previous, chunk in zip([None, *chunks[:-1]], chunks, strict=True):
        start = text.index(chunk.text, position)
        gap = text[position:start]
        assert gap.strip() == ""
        if previous is not None and not gap:
            assert previous.text[-1] == chunk.text[0] == "z"
        position = start + len(chunk.text)
    assert position == len(text)


# -- LoCo -------------------------------------------------------------------------------------------


def test_loco_offline_says_what_is_missing_and_how_to_provide_it(tmp_path: Path) -> None:
    env = os.environ | {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "eval", "loco", "--model", "Alibaba-NLP/gte-large-en-v1.5"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    message = done.stderr
    assert "cannot run LoCo" in message and "--allow-download" in message
    assert "- model weights:" in message and "Alibaba-NLP/gte-large-en-v1.5" in message
    assert "- dataset:" in message and "--loco-dir" in message and "hazyresearch/LoCoV1-Documents" in message


def test_loco_from_local_folders_prints_the_card_beside_the_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, topic in (("qmsum", "bees"), ("gov_report", "comets")):
        title, sections = TOPICS[topic]
        corpus = [
            {"_id": f"{key}-{i}", "text": f"{heading}. {body}"}
            for i, (heading, body) in enumerate(sections.items())
        ]
        queries = [{"_id": "q", "text": next(iter(sections.values()))[:60]}]
        write_beir(tmp_path / key, corpus, queries, [("q", f"{key}-0", 1)])
    argv = ["eval", "loco", "--model", "minilm", "--loco-dir", str(tmp_path), "--tasks", "gov_report,qmsum"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    label, ours, card, delta = rows["QMSum"][:4]
    assert card == "44.55" and float(delta) == pytest.approx(float(ours) - 44.55, abs=0.011)
    assert "GovReport" in rows and "SummScreenFD" not in rows
    assert "average (2 tasks)" in table and f"{(44.55 + 98.74) / 2:.2f}" in table
    assert "the card ran fp16 on a GPU" in table


def test_loco_rows_become_one_dataset_per_task_with_binary_relevance() -> None:
    documents = [
        {"pid": "qm_0", "dataset": "qmsum", "passage": "meeting one"},
        {"pid": "qm_1", "dataset": "qmsum", "passage": "meeting two"},
        {"pid": "so_0", "dataset": "stackoverflow", "passage": "not a card task"},
    ]
    queries = [
        {"qid": "qm_q", "dataset": "qmsum", "query": "what was decided?", "answer_pids": ["qm_1", "qm_9"]},
        {"qid": "so_q", "dataset": "stackoverflow", "query": "how?", "answer_pids": ["so_0"]},
    ]
    (qmsum,) = _tasks_from_rows(select_tasks("qmsum"), documents, queries)
    assert qmsum.name == "qmsum"
    assert qmsum.documents == {
        "qm_0": Document("qm_0", "", "meeting one"),
        "qm_1": Document("qm_1", "", "meeting two"),
    }
    assert (qmsum.queries, qmsum.qrels) == ({"qm_q": "what was decided?"}, {"qm_q": {"qm_1": 1}})
    assert qmsum.notes == ["1 answer ids of hazyresearch/LoCoV1-Queries are not in the corpus; dropped"]


def test_offline_switch_is_restored_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    client = SimpleNamespace(HF_HUB_OFFLINE=False, HF_DATASETS_OFFLINE=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with _offline(True, client):
        assert client.HF_HUB_OFFLINE is client.HF_DATASETS_OFFLINE is True
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert client.HF_HUB_OFFLINE is client.HF_DATASETS_OFFLINE is False
    assert "HF_HUB_OFFLINE" not in os.environ
    with _offline(False, client):
        assert client.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ


def test_loco_card_average_is_the_cards() -> None:
    assert round(sum(task.card for task in TASKS) / len(TASKS), 2) == CARD_AVERAGE


def test_unknown_loco_task_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "loco", "--tasks", "qmsum,nope"]) == 2
    assert "unknown LoCo task(s) nope" in capsys.readouterr().err


@pytest.mark.parametrize("tasks", [",", " , ", ""])
def test_loco_tasks_that_name_no_task_are_refused_before_data_or_model_is_looked_for(
    tasks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No data and no model here: the refusal must come before either is needed."""
    argv = ["eval", "loco", "--tasks", tasks, "--loco-dir", str(tmp_path), "--model", str(tmp_path / "none")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ragkit: error: --tasks {tasks!r} names no LoCo task") and "Traceback" not in err


# -- bad dataset folders ------------------------------------------------------------------------------

GOOD_CORPUS = '{"_id": "d1", "title": "T", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
GOOD_QUERIES = '{"_id": "q1", "text": "what"}\n'
GOOD_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"queries.jsonl": None}, "is missing"),
        ({"corpus.jsonl": GOOD_CORPUS + '{"_id": "d3", "text": "x"\n'}, "corpus.jsonl:3: not valid JSON"),
        ({"corpus.jsonl": GOOD_CORPUS + '\n{"text": "no id"}\n'}, 'corpus.jsonl:4: missing or empty "_id"'),
        (
            {"corpus.jsonl": GOOD_CORPUS + '{"_id": "d1", "text": "x"}\n'},
            "corpus.jsonl:3: duplicate _id 'd1' (first on line 1)",
        ),
        ({"corpus.jsonl": '["d1", "one"]\n'}, "corpus.jsonl:1: expected a JSON object"),
        ({"queries.jsonl": '{"_id": "q1", "text": "  "}\n'}, "queries.jsonl:1: query 'q1' has no text"),
        ({"test.tsv": GOOD_QRELS + "q1\td7\t1\n"}, "test.tsv:3: corpus-id 'd7' is not in corpus.jsonl"),
        (
            {"test.tsv": GOOD_QRELS + "q9\td1\t1\nq8\td1\t1\n"},
            "test.tsv:3: query-id 'q9' is not in queries.jsonl (and 1 more",
        ),
        ({"test.tsv": GOOD_QRELS + "q1\td2\thigh\n"}, "test.tsv:3: score 'high' is not an integer"),
        (
            {"test.tsv": GOOD_QRELS + "q1\td2\t1\nq1\td1\t0\n"},
            "test.tsv:4: query-id 'q1' judges corpus-id 'd1' again (first on line 2)",
        ),
        ({"test.tsv": GOOD_QRELS + "q1 d2 1\n"}, "test.tsv:3: expected 3 tab-separated fields"),
        ({"test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t0\n"}, "no query has a relevant document"),
    ],
)
def test_bad_dataset_folders_name_the_file_and_line(tmp_path: Path, files: dict, expected: str) -> None:
    contents = {"corpus.jsonl": GOOD_CORPUS, "queries.jsonl": GOOD_QUERIES, "test.tsv": GOOD_QRELS} | files
    (tmp_path / "qrels").mkdir()
    for name, content in contents.items():
        if content is not None:
            (tmp_path / ("qrels" if name == "test.tsv" else "") / name).write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        load_beir(tmp_path)
    assert expected in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_a_good_folder_loads_with_its_grades(tmp_path: Path) -> None:
    write_beir(
        tmp_path, [{"_id": 7, "title": None, "text": "seven"}], [{"_id": "q", "text": "n"}], [("q", "7", 3)]
    )
    dataset = load_beir(tmp_path)
    assert dataset.documents == {"7": Document("7", "", "seven")}
    assert dataset.qrels == {"q": {"7": 3}}


def test_the_command_reports_a_bad_folder_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(tmp_path / "nowhere"), "--model", "minilm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragkit: error: dataset folder") and "does not exist" in err
