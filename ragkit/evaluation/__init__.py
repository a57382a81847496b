"""Retrieval evaluation: how well a model and a cutting strategy find the relevant documents.

`evaluate_folder` scores a BEIR-layout dataset and `evaluate_loco` the model card's LoCo tasks, both
through ragkit's own sectioning, encoder, Qdrant store and `Kit.search`; `ragkit eval` is their command
line. The metrics (nDCG@10, Recall@10/100, MRR@10) come from ir-measures, on trec_eval's code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.evaluation.dataset import Dataset, DatasetError, Document, load_beir
    from ragkit.evaluation.loco import TASKS, LocoResult, LocoTask, LocoUnavailableError, evaluate_loco
    from ragkit.evaluation.metrics import METRICS, score
    from ragkit.evaluation.options import EvalOptions
    from ragkit.evaluation.result import EvalResult
    from ragkit.evaluation.runner import evaluate, evaluate_folder

# Loaded on first use: the runner brings torch with it, which the LoCo pre-flight check must not wait for.
_LAZY = {
    "Dataset": "dataset",
    "DatasetError": "dataset",
    "Document": "dataset",
    "load_beir": "dataset",
    "TASKS": "loco",
    "LocoResult": "loco",
    "LocoTask": "loco",
    "LocoUnavailableError": "loco",
    "evaluate_loco": "loco",
    "METRICS": "metrics",
    "score": "metrics",
    "EvalResult": "result",
    "EvalOptions": "options",
    "evaluate": "runner",
    "evaluate_folder": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"ragkit.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ragkit.evaluation' has no attribute {name!r}")


__all__ = [
    "METRICS",
    "TASKS",
    "Dataset",
    "DatasetError",
    "Document",
    "EvalOptions",
    "EvalResult",
    "LocoResult",
    "LocoTask",
    "LocoUnavailableError",
    "evaluate",
    "evaluate_folder",
    "evaluate_loco",
    "load_beir",
    "score",
]
