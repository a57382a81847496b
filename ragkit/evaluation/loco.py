"""LoCo, the long-document retrieval benchmark of the gte-v1.5 model card, scored beside the card's figures.

The five tasks of the card come from the Hugging Face datasets `hazyresearch/LoCoV1-Documents` and
`hazyresearch/LoCoV1-Queries` (rows tagged with their task in `dataset`; a query's `answer_pids` are its
relevant documents), read through the `datasets` package, or from `loco_dir`: one BEIR-layout folder per
task, named as the task (`qmsum/corpus.jsonl`, ...). Both the data and the weights come from local copies
only unless downloads are allowed, and when something is missing the error names every missing part and
how to provide it, instead of failing on the first.

The card's settings are fp16 on a GPU, max length 8192 and NTK RoPE scaling with factor 2. The first two
are set here (fp16 whenever the encoder runs on CUDA; 8192 is the checkpoint's own limit); the factor is
part of the published checkpoint's config (`rope_scaling: {type: ntk, factor: 2}`), so it is read and
reported rather than set. The card's figures are nDCG@10 × 100, and so are the scores here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.encoder import resolve_model
from ragkit.errors import InputError, ModelLoadError, RagkitError
from ragkit.evaluation.dataset import Dataset, Document, load_beir
from ragkit.evaluation.options import EvalOptions
from ragkit.evaluation.result import EvalResult

DOCUMENTS_REPO = "hazyresearch/LoCoV1-Documents"
QUERIES_REPO = "hazyresearch/LoCoV1-Queries"
CARD_MODEL = "Alibaba-NLP/gte-large-en-v1.5"
CARD_AVERAGE = 86.71
CARD_SETTINGS = {"dtype": "float16", "device": "cuda", "max_length": 8192, "ntk_factor": 2.0}
SCHEMA = "ragkit.eval.loco/1"
_ENV_FLAG = "HF_HUB_OFFLINE"
_MODULE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class LocoTask:
    """A task: its name in LoCoV1's `dataset` column (and --loco-dir), its label, and the card's figure."""

    key: str
    label: str
    card: float


TASKS = (
    LocoTask("qmsum", "QMSum", 44.55),
    LocoTask("summ_screen_fd", "SummScreenFD", 92.61),
    LocoTask("gov_report", "GovReport", 98.74),
    LocoTask("qasper_title", "Qasper title", 97.81),
    LocoTask("qasper_abstract", "Qasper abstract", 99.82),
)


class LocoUnavailableError(RagkitError):
    """The LoCo data or the model weights are not available locally (and downloads were not allowed)."""


@dataclass
class LocoResult:
    """Per-task results with the card's figures; `settings` is what this run used."""

    model: str
    settings: dict[str, Any]
    tasks: list[tuple[LocoTask, EvalResult]]
    notes: list[str] = field(default_factory=list)

    @property
    def average(self) -> float:
        return sum(_score(result) for _, result in self.tasks) / len(self.tasks)

    @property
    def card_average(self) -> float:
        """The card's own average over all five tasks, or the mean of its figures for a subset."""
        if len(self.tasks) == len(TASKS):
            return CARD_AVERAGE
        return sum(task.card for task, _ in self.tasks) / len(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": self.model,
            "card_model": CARD_MODEL,
            "settings": self.settings,
            "card_settings": CARD_SETTINGS,
            "tasks": [
                {
                    "task": task.key,
                    "label": task.label,
                    "score": round(_score(result), 2),
                    "card": task.card,
                    "delta": round(_score(result) - task.card, 2),
                    "result": result.to_dict(),
                }
                for task, result in self.tasks
            ],
            "average": {
                "tasks": len(self.tasks),
                "score": round(self.average, 2),
                "card": round(self.card_average, 2),
                "delta": round(self.average - self.card_average, 2),
            },
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """The comparison table, with each task's size and speed beside it."""
        ntk = self.settings["ntk_factor"]
        lines = [
            f"LoCo, nDCG@10 x 100, beside the model card of {CARD_MODEL}",
            f"this run: {self.model}, {self.settings['dtype']} on {self.settings['device']}, max length "
            f"{self.settings['max_length']}, NTK factor {'none' if ntk is None else f'{ntk:g}'}, "
            f"strategy {self.settings['strategy']}",
            "card:     float16 on GPU, max length 8192, NTK factor 2",
            "",
            f"{'task':<20}{'ragkit':>8}{'card':>8}{'delta':>8}{'tokens':>14}{'tokens/s':>11}",
        ]
        for task, result in self.tasks:
            lines.append(
                f"{task.label:<20}{_score(result):>8.2f}{task.card:>8.2f}{_score(result) - task.card:>+8.2f}"
                f"{result.tokens_embedded:>14,}{result.tokens_per_second:>11,.0f}"
            )
        average = f"average ({len(self.tasks)} tasks)"
        lines.append(
            f"{average:<20}{self.average:>8.2f}{self.card_average:>8.2f}{self.average - self.card_average:>+8.2f}"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(f"note: {task.label}: {note}" for task, result in self.tasks for note in result.notes)
        return "\n".join(lines)


def select_tasks(names: str | Sequence[str] | None) -> list[LocoTask]:
    """The named tasks (comma-separated or a list), in the card's order; all five when `names` is None.

    Names that leave no task (`--tasks ,`) are refused here, before any model loads: a run of no task
    has no average to report.
    """
    if names is None:
        return list(TASKS)
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not wanted:
        raise InputError(
            f"--tasks {names!r} names no LoCo task; name one or more of {', '.join(t.key for t in TASKS)}, "
            "or leave --tasks out for all five"
        )
    unknown = sorted(set(wanted) - {task.key for task in TASKS})
    if unknown:
        raise InputError(
            f"unknown LoCo task(s) {', '.join(unknown)}; the card's tasks are "
            f"{', '.join(task.key for task in TASKS)}"
        )
    return [task for task in TASKS if task.key in wanted]


def evaluate_loco(
    *,
    model: str = CARD_MODEL,
    device: str = "auto",
    tasks: Sequence[LocoTask] = TASKS,
    loco_dir: str | Path | None = None,
    allow_download: bool = False,
    options: EvalOptions | None = None,
    store: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    progress: bool = False,
) -> LocoResult:
    """Run the LoCo tasks with the card's settings; raises LocoUnavailableError naming what is missing."""
    datasets, weights = _gather(model, tasks, loco_dir, allow_download)
    # torch loads only now, so that a missing dataset or model is reported at once.
    from ragkit.encoder import Encoder
    from ragkit.evaluation.runner import collection_name, evaluate, open_store

    options = options or EvalOptions()
    encoder = Encoder.from_pretrained(model, device=device, dtype=_card_dtype(device))
    settings = {
        "dtype": str(encoder.dtype).removeprefix("torch."),
        "device": str(encoder.device),
        "max_length": encoder.max_length,
        "ntk_factor": ntk_factor(weights),
        "strategy": options.strategy,
    }
    results = []
    with open_store(store=store, url=url, api_key=api_key) as opened:
        for task, dataset in zip(tasks, datasets, strict=True):
            name = collection_name(f"loco-{task.key}", options, encoder.name)
            results.append(
                (
                    task,
                    evaluate(dataset, encoder, opened, collection=name, options=options, progress=progress),
                )
            )
    return LocoResult(encoder.name, settings, results, _differences(settings))


def ntk_factor(checkpoint_dir: Path) -> float | None:
    """The fixed-NTK RoPE factor in an original gte checkpoint's config.json; None when it has none."""
    path = checkpoint_dir / "config.json"
    try:
        scaling = json.loads(path.read_text(encoding="utf-8")).get("rope_scaling") or {}
    except (OSError, ValueError):
        return None
    return float(scaling["factor"]) if scaling.get("type") == "ntk" and "factor" in scaling else None


def _gather(
    model: str, tasks: Sequence[LocoTask], loco_dir: str | Path | None, allow_download: bool
) -> tuple[list[Dataset], Path]:
    """The tasks' data and the weights' folder, or one error that lists everything missing."""
    from huggingface_hub import constants as hub_constants  # imported first: it reads the environment

    missing: list[str] = []
    try:
        with _offline(not allow_download, hub_constants):
            weights = resolve_model(model).path
    except ModelLoadError as exc:
        missing.append(f"- model weights: {exc}")
    try:
        datasets = _from_folder(Path(loco_dir), tasks) if loco_dir else _from_hub(tasks, allow_download)
    except LocoUnavailableError as exc:
        missing.append(f"- dataset: {exc}")
    if missing:
        if not allow_download:
            missing.append("Data and weights are read from local copies only, unless --allow-download.")
        raise LocoUnavailableError(
            "cannot run LoCo: some of its inputs are not available here.\n" + "\n".join(missing)
        )
    return datasets, weights


def _from_folder(root: Path, tasks: Sequence[LocoTask]) -> list[Dataset]:
    absent = [task.key for task in tasks if not (root / task.key).is_dir()]
    if absent:
        raise LocoUnavailableError(
            f"--loco-dir {root} has no folder for {', '.join(absent)}; it needs one BEIR-layout folder "
            f"per task ({', '.join(t.key for t in tasks)}), each with corpus.jsonl, queries.jsonl, qrels/test.tsv"
        )
    return [load_beir(root / task.key) for task in tasks]


def _from_hub(tasks: Sequence[LocoTask], allow_download: bool) -> list[Dataset]:
    how = (
        f"either pass --loco-dir DIR with one BEIR-layout folder per task ({', '.join(t.key for t in tasks)}), "
        f"or fill the Hugging Face cache where there is network: pip install datasets, then "
        f"python -c \"import datasets; [datasets.load_dataset(r, split='test') for r in "
        f"('{DOCUMENTS_REPO}', '{QUERIES_REPO}')]\""
    )
    try:
        import datasets as hf_datasets
        from huggingface_hub import constants as hub_constants
    except ImportError:
        raise LocoUnavailableError(f"the Python package `datasets` is not installed; {how}") from None
    try:
        with _offline(not allow_download, hub_constants, hf_datasets.config):
            documents = hf_datasets.load_dataset(DOCUMENTS_REPO, split="test")
            queries = hf_datasets.load_dataset(QUERIES_REPO, split="test")
    except Exception as exc:  # datasets raises several types for "not cached" and "no network"
        where = "could not be downloaded" if allow_download else "is not in the local Hugging Face cache"
        raise LocoUnavailableError(f"{DOCUMENTS_REPO} / {QUERIES_REPO} {where} ({exc}); {how}") from exc
    # Filtering on the task column first spares decoding the long passages of the other seven tasks.
    keys = {task.key for task in tasks}
    return _tasks_from_rows(
        tasks,
        documents.filter(lambda name: name in keys, input_columns="dataset"),
        queries.filter(lambda name: name in keys, input_columns="dataset"),
    )


def _tasks_from_rows(
    tasks: Sequence[LocoTask], documents: Iterable[dict[str, Any]], queries: Iterable[dict[str, Any]]
) -> list[Dataset]:
    """Split LoCoV1's rows by task; answer ids missing from a task's corpus are dropped and counted."""
    built = {task.key: Dataset(task.key, {}, {}, {}) for task in tasks}
    for row in documents:
        if row["dataset"] in built:
            built[row["dataset"]].documents[row["pid"]] = Document(row["pid"], "", row["passage"])
    dropped = dict.fromkeys(built, 0)
    for row in queries:
        dataset = built.get(row["dataset"])
        if dataset is None:
            continue
        answers = [pid for pid in row["answer_pids"] if pid in dataset.documents]
        dataset.queries[row["qid"]] = row["query"]
        dataset.qrels[row["qid"]] = dict.fromkeys(answers, 1)
        dropped[dataset.name] += len(row["answer_pids"]) - len(answers)
    for key, count in dropped.items():
        if count:
            built[key].notes.append(f"{count} answer ids of {QUERIES_REPO} are not in the corpus; dropped")
    return [built[task.key] for task in tasks]


def _score(result: EvalResult) -> float:
    return 100 * result.metrics["ndcg@10"]


@contextlib.contextmanager
def _offline(enabled: bool, *modules: Any) -> Iterator[None]:
    """Hold the hub clients offline for a while, then restore them. ragkit's model resolution reads
    HF_HUB_OFFLINE from the environment; huggingface_hub and datasets read module values that they set
    from it when imported, so those modules must be imported before and passed here."""
    if not enabled:
        yield
        return
    saved = [
        (module, name, getattr(module, name))
        for module in modules
        for name in _MODULE_FLAGS
        if hasattr(module, name)
    ]
    saved_env = os.environ.get(_ENV_FLAG)
    os.environ[_ENV_FLAG] = "1"
    for module, name, _ in saved:
        setattr(module, name, True)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
        if saved_env is None:
            os.environ.pop(_ENV_FLAG, None)
        else:
            os.environ[_ENV_FLAG] = saved_env


def _card_dtype(device: str) -> str | None:
    """fp16 wherever the encoder will run on CUDA, as the card evaluated; the encoder's default elsewhere."""
    from ragkit.encoder.encoder import pick_device

    return "float16" if pick_device(device).type == "cuda" else None


def _differences(settings: dict[str, Any]) -> list[str]:
    notes = []
    if settings["dtype"] != "float16" or not settings["device"].startswith("cuda"):
        notes.append(f"the card ran fp16 on a GPU; this run ran {settings['dtype']} on {settings['device']}")
    if settings["max_length"] != CARD_SETTINGS["max_length"]:
        notes.append(f"max length {settings['max_length']} (the card: {CARD_SETTINGS['max_length']})")
    if settings["ntk_factor"] is None:
        notes.append("the checkpoint has no NTK RoPE scaling (the card: factor 2)")
    elif settings["ntk_factor"] != CARD_SETTINGS["ntk_factor"]:
        notes.append(f"the checkpoint's NTK factor is {settings['ntk_factor']:g} (the card: 2)")
    return notes
