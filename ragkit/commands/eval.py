"""`ragkit eval`: how well a model and a cutting strategy retrieve, on a BEIR-layout folder or on LoCo.

    ragkit eval DATASET_DIR --model minilm [--strategy section|chunk] [--chunk-tokens 512] [--top-k 100]
                [--mode hybrid|dense|sparse] [--fusion rrf|dbsf]
    ragkit eval loco --model Alibaba-NLP/gte-large-en-v1.5 [--tasks qmsum,gov_report] [--loco-dir DIR]

Documents are indexed in a temporary embedded store (or in --store DIR / --url, where a second run
reuses what is stored) and every judged query goes through `Kit.search`. The text output is for people;
`--json` prints one object whose keys only ever grow under the same `schema`:

`"schema": "ragkit.eval/1"` (a dataset folder)
    dataset, model, device, dtype: what ran and where ("float32", "float16", ...)
    strategy: "section" | "chunk"; mode: "dense" | "sparse" | "hybrid"; fusion: "rrf" | "dbsf" (hybrid's)
    max_tokens: per unit; chunk_tokens: as asked (null for sections)
    top_k: documents ranked per query; collection: the Qdrant collection used
    documents, queries (judged ones), units (sections or chunks), units_embedded, units_reused
    tokens_embedded, embed_seconds, tokens_per_second: document embedding only
    search_seconds, queries_per_second: query embedding and search
    short_rankings: queries that got fewer than top_k documents (search limit reached)
    metrics: {"ndcg@10", "recall@10", "recall@100", "mrr@10"}, fractions from 0 to 1
    notes: list of strings (clamped chunk size, documents without text, ...)

`"schema": "ragkit.eval.loco/1"` (loco)
    model, card_model; settings: {dtype, device, max_length, ntk_factor, strategy} of this run;
    card_settings: {dtype, device, max_length, ntk_factor} as the card evaluated
    tasks: [{task, label, score, card, delta, result}] where score and card are nDCG@10 x 100 and
      result is the task's "ragkit.eval/1" object
    average: {tasks, score, card, delta}; notes: list of strings
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkit.cli import check_api_key, check_fusion_flag, fusion_flag
from ragkit.errors import InputError
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE
from ragkit.store.schema import SEARCH_MODES

LOCO = "loco"
EPILOG = """\
DATASET is a folder in the BEIR layout: corpus.jsonl ({"_id", "title", "text"} per line),
queries.jsonl ({"_id", "text"}) and qrels/test.tsv (header query-id, corpus-id, score). Markdown
headings in a document's text become its sections' headings. Documents are indexed in a temporary
embedded store, deleted afterwards, unless --store DIR or --url names one to keep (and reuse); the
collection is named after the dataset, strategy and model unless --collection names it: a new one, or
one eval wrote, since eval replaces what its collection holds and so refuses one of ingested documents.

`loco` runs the LoCo tasks of the gte-large-en-v1.5 model card (QMSum, SummScreenFD, GovReport,
Qasper title, Qasper abstract) with the card's settings (fp16 on GPU, max length 8192, NTK factor 2)
and prints the card's figures beside the scores. Data comes from --loco-dir, or from the Hugging Face
datasets hazyresearch/LoCoV1-Documents and LoCoV1-Queries (pip install datasets); data and weights
are read from local copies only, unless --allow-download.
"""


def register(commands: Any, store_flags: Callable[..., None]) -> None:
    parser = commands.add_parser(
        "eval",
        help="retrieval quality (nDCG@10, recall, MRR) on a BEIR-layout dataset or LoCo",
        description="Index a dataset's documents, search its queries and score the rankings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", metavar="DATASET", help=f"a BEIR-layout folder, or `{LOCO}`")
    store_flags(parser, own_collection=True)  # eval's collection is its own: see EPILOG
    parser.add_argument(
        "--strategy",
        choices=("section", "chunk"),
        default="section",
        help="embed whole sections (ragkit) or fixed token windows (the usual baseline); default section",
    )
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=512,
        metavar="N",
        help="window size of --strategy chunk, at most the model's limit (default 512)",
    )
    parser.add_argument(
        "--top-k", type=int, default=100, metavar="K", help="documents ranked per query (default 100)"
    )
    parser.add_argument(
        "--mode",
        choices=SEARCH_MODES,
        default=DEFAULT_MODE,
        help=f"search mode (default {DEFAULT_MODE}); the stored vectors serve every mode, so with --store DIR "
        "comparing modes embeds the corpus once",
    )
    fusion_flag(
        parser, help_text=f"how hybrid mode fuses its two lists (default {DEFAULT_FUSION}; hybrid mode only)"
    )
    parser.add_argument("--split", default="test", help="qrels file qrels/SPLIT.tsv (default test)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (schema: pydoc ragkit.commands.eval)"
    )
    loco = parser.add_argument_group("loco")
    loco.add_argument("--tasks", metavar="A,B", help="a subset of the LoCo tasks, e.g. qmsum,gov_report")
    loco.add_argument(
        "--loco-dir", type=Path, metavar="DIR", help="one BEIR-layout folder per task, named like the task"
    )
    loco.add_argument(
        "--allow-download",
        action="store_true",
        help="fetch missing data and weights from the Hugging Face hub",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ragkit.config import Settings

    check_api_key(args, url_from_environment=False)  # eval's server is --url's only
    check_fusion_flag(args)
    settings = Settings.from_env()
    common = {
        "device": args.device or settings.device,
        "store": args.store,
        "url": args.url,
        # As for every command, a server's key defaults to RAGKIT_QDRANT_API_KEY (a folder takes none).
        "api_key": args.api_key or (settings.api_key if args.url else None),
        "progress": sys.stderr.isatty(),
    }
    result: Any
    if args.dataset == LOCO:
        # Imported here, and torch only once data and weights are found, so an offline run fails at once.
        from ragkit.evaluation.loco import evaluate_loco, select_tasks

        if args.collection:
            raise InputError("--collection names one collection, and loco indexes one per task: leave it out")
        result = evaluate_loco(
            model=args.model or settings.model,
            options=_options(args),
            tasks=select_tasks(args.tasks),
            loco_dir=args.loco_dir,
            allow_download=args.allow_download,
            **common,
        )
    else:
        if args.tasks or args.loco_dir or args.allow_download:
            raise InputError("--tasks, --loco-dir and --allow-download apply to `ragkit eval loco` only")
        from ragkit.evaluation.runner import evaluate_folder

        result = evaluate_folder(
            args.dataset,
            options=_options(args),
            model=args.model or settings.model,
            split=args.split,
            collection=args.collection,
            **common,
        )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def _options(args: argparse.Namespace) -> Any:
    from ragkit.evaluation.options import EvalOptions

    return EvalOptions(
        strategy=args.strategy,
        chunk_tokens=args.chunk_tokens,
        top_k=args.top_k,
        mode=args.mode,
        fusion=args.fusion,
    )
