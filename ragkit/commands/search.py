"""`ragkit search` and `ragkit query`: the read path from a shell, for people (a table) and scripts (--json)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from ragkit.cli import check_fusion_flag, count_flag, fusion_flag, open_kit
from ragkit.errors import InputError
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES, OpenAICompatibleLLM
from ragkit.query_engine import DEFAULT_CONTEXT_TOKENS, DEFAULT_TOP_K, QueryResponse
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, MAX_TOP_K, Hit
from ragkit.store import SEARCH_MODES as MODES

FILTER_HELP = """\
filters (--filter, repeatable; every key must match):
  KEY=VALUE          equality. VALUE is a number if it reads as one, true/false a boolean,
                     "quoted" the string inside the quotes, anything else the string as typed
  KEY=A --filter KEY=B
                     the same key again: any of the values
  KEY>=N  KEY>N  KEY<=N  KEY<N
                     numeric range; several on one key combine (quote them for the shell)
  fields: source (the file's absolute path, as ingest recorded it and hits show it), doc_id, title,
  section_index, page_start, page_end, and the --metadata keys of ingest; `--json` shows a hit's fields
  example: --filter source=/srv/docs/a.pdf --filter 'page_start>=3' --filter 'page_end<=7'
"""

LLM_HELP = "LLM (without one, the answer quotes the most relevant sentences):\n" + "\n".join(
    f"  {name:<20} {text}" for name, text in LLM_ENVIRONMENT_VARIABLES.items()
)

_FILTER = re.compile(r"([^<>=]+?)(>=|<=|>|<|=)(.*)", re.DOTALL)
_RANGE_OPERATORS = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}
_SNIPPET_MIN = 20


def register(commands: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    search = commands.add_parser(
        "search",
        help="the sections that best match a query",
        description="The sections that best match QUERY, best first: a table, or JSON with --json.",
        epilog=FILTER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("query", metavar="QUERY")
    store_flags(search)
    _read_flags(search)
    search.set_defaults(run=_search)

    query = commands.add_parser(
        "query",
        help="answer a question from the collection, citing its sections",
        description="Answer QUESTION from the collection's best sections, with numbered sources.",
        epilog=FILTER_HELP + "\n" + LLM_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("question", metavar="QUESTION")
    store_flags(query)
    _read_flags(query)
    query.add_argument(
        "--context-tokens",
        type=int,
        default=DEFAULT_CONTEXT_TOKENS,
        metavar="N",
        help=f"token budget of the sources given to the LLM (default {DEFAULT_CONTEXT_TOKENS})",
    )
    query.add_argument("--llm-url", metavar="URL", help="OpenAI-compatible base URL (RAGKIT_LLM_URL)")
    query.add_argument("--llm-model", metavar="NAME", help="model name for that server (RAGKIT_LLM_MODEL)")
    query.add_argument(
        "--llm-timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for that server's answer (RAGKIT_LLM_TIMEOUT; default 120)",
    )
    query.set_defaults(run=_query)


def _read_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--top-k",
        type=count_flag("sections", 1, MAX_TOP_K),
        default=DEFAULT_TOP_K,
        metavar="N",
        help=f"sections, 1 to {MAX_TOP_K} (default {DEFAULT_TOP_K})",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        dest="filters",
        metavar="K=V",
        help="metadata filter, repeatable (see below)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help=f"dense (embeddings), sparse (BM25 keywords) or hybrid (both, fused by rank; default {DEFAULT_MODE})",
    )
    fusion_flag(
        parser,
        help_text="how hybrid fuses its two lists: reciprocal rank or distribution-based "
        f"(default {DEFAULT_FUSION}; hybrid mode only)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        metavar="S",
        help="drop hits scoring below S, in the mode's scale (cosine, BM25, or fused rank score)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def parse_filters(specs: Sequence[str]) -> dict[str, Any] | None:
    """`--filter` flags -> the plain-dict filters of `Kit.search` (see FILTER_HELP)."""
    filters: dict[str, Any] = {}
    for spec in specs:
        match = _FILTER.fullmatch(spec)
        if match is None or not match[1].strip():
            raise InputError(f"--filter {spec!r}: expected KEY=VALUE, or KEY>=NUMBER (also >, <=, <)")
        key, operator, raw = match[1].strip(), match[2], match[3].strip()
        current = filters.get(key)
        if operator == "=":
            if isinstance(current, dict):
                raise InputError(
                    f"--filter {spec!r}: {key!r} already has a range; use either ranges or values"
                )
            value = _value(raw)
            filters[key] = value if current is None else [*_as_list(current), value]
            continue
        if current is not None and not isinstance(current, dict):
            raise InputError(f"--filter {spec!r}: {key!r} already has a value; use either ranges or values")
        try:
            bound = float(raw)
        except ValueError:
            raise InputError(f"--filter {spec!r}: a range needs a number after {operator}") from None
        filters.setdefault(key, {})[_RANGE_OPERATORS[operator]] = int(bound) if bound.is_integer() else bound
    return filters or None


def _value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str | int | float) else raw  # bool is an int


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _search(args: argparse.Namespace) -> int:
    check_fusion_flag(args)
    filters = parse_filters(args.filters)
    with open_kit(args, existing=True) as kit:
        hits = kit.search(
            args.query,
            top_k=args.top_k,
            filters=filters,
            score_threshold=args.score_threshold,
            mode=args.mode,
            fusion=args.fusion,
        )
        collection = kit.collection
    if args.json:
        hits_json = [asdict(hit) for hit in hits]
        print(
            json.dumps(
                {"collection": collection, "query": args.query, "hits": hits_json},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(render_table(hits) if hits else "No matching sections.")
    return 0


def _query(args: argparse.Namespace) -> int:
    check_fusion_flag(args)
    filters = parse_filters(args.filters)
    llm = OpenAICompatibleLLM.from_env(url=args.llm_url, model=args.llm_model, timeout=args.llm_timeout)
    for flag, value in (("--llm-model", args.llm_model), ("--llm-timeout", args.llm_timeout)):
        if llm is None and value is not None:
            raise InputError(f"{flag} needs a server: pass --llm-url or set RAGKIT_LLM_URL")
    with open_kit(args, existing=True) as kit:
        engine = kit.query_engine(
            llm,
            top_k=args.top_k,
            context_tokens=args.context_tokens,
            filters=filters,
            score_threshold=args.score_threshold,
            mode=args.mode,
            fusion=args.fusion,
        )
        response = engine.query(args.question)
    if args.json:
        print(json.dumps(response.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_response(response))
    return 0


def render_table(hits: Sequence[Hit]) -> str:
    """One row per hit, the text column filling what the terminal has left."""
    rows = [
        (
            str(rank),
            f"{hit.score:.3f}",
            _clip_left(str(hit.metadata.get("source", "")), 40),
            _clip_left(" > ".join(hit.metadata.get("breadcrumb") or []), 40),
            _pages(hit.metadata),
        )
        for rank, hit in enumerate(hits, 1)
    ]
    header = ("#", "score", "source", "section", "pages")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    snippet = max(shutil.get_terminal_size((120, 24)).columns - sum(widths) - 2 * len(widths), _SNIPPET_MIN)
    lines = []
    for cells, hit in zip([header, *rows], [None, *hits], strict=True):
        text = "text" if hit is None else _clip_right(" ".join(hit.text.split()), snippet)
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + "  " + text
        )
    return "\n".join(lines)


def render_response(response: QueryResponse) -> str:
    lines = [response.answer, ""]
    if response.sources:
        lines.append("Sources:")
        lines += [
            f"{source.header}  score {source.score:.3f}"
            + ("  (trimmed to fit the context)" if source.trimmed else "")
            for source in response.sources
        ]
        lines.append("")
    lines.append(", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in response.timings.items()))
    return "\n".join(lines)


def _pages(metadata: dict[str, Any]) -> str:
    start, end = metadata.get("page_start"), metadata.get("page_end")
    if start is None:
        return "-"
    return str(start) if end in (None, start) else f"{start}-{end}"


def _clip_left(text: str, width: int) -> str:
    """Keeps the end, where a path has its file name and a breadcrumb its deepest heading."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _clip_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
