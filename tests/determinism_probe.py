"""Sections of a set of files, as a fresh process computes them, for tests/test_determinism.py.

Usage: python -m tests.determinism_probe TOKENIZER_DIR [--alone] FILE...  (the caller sets PYTHONHASHSEED).
Prints JSON {mode: {file: digest}}, one digest of each file's title and sections (text, breadcrumb,
pages, tokens) per way of running the job:

* "here": all files in the given order, parsed in this process (the pipeline's `workers=0`);
* "workers": all files in reverse order, through the pipeline's pool of spawned parsing processes
  (one, so that each file follows the others in the same worker);
* "alone" (with --alone): each file as a job of its own, in this process.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.prepare import Prepared
    from ragkit.encoder.tokens import TokenCounter

MAX_TOKENS = 256


def digest(prepared: Prepared) -> str:
    sections = [
        [section.text, list(section.breadcrumb), section.page_start, section.page_end, section.tokens]
        for section in prepared.sections
    ]
    return hashlib.sha256(json.dumps([prepared.title, sections]).encode()).hexdigest()


def sections_of(paths: list[Path], counter: TokenCounter, workers: int) -> dict[str, str]:
    # Imported here, not above: a spawned worker re-imports this module, and the pipeline's imports
    # would bring torch into it, which the pipeline's own workers never load.
    from ingest.discover import document_id
    from ingest.isolation import prepare_isolated
    from ingest.prepare import Job, Prepared, prepare

    jobs = [Job(path, document_id(path), "", None) for path in paths]
    digests = {}
    # workers=0: in this process; else the pipeline's own parsing processes.
    outcomes = (
        (prepare(job, counter, MAX_TOKENS) for job in jobs)
        if workers == 0
        else prepare_isolated(jobs, counter, MAX_TOKENS, processes=workers, timeout=None)
    )
    for outcome in outcomes:
        if not isinstance(outcome, Prepared):
            job, error = outcome
            raise SystemExit(f"{job.path}: {error}")
        digests[outcome.job.path.name] = digest(outcome)
    return digests


def main() -> None:
    from ragkit.encoder.checkpoint import load_tokenizer
    from ragkit.encoder.tokens import TokenCounter

    counter = TokenCounter(load_tokenizer(Path(sys.argv[1])))
    alone = "--alone" in sys.argv[2:]
    paths = [Path(arg).resolve() for arg in sys.argv[2:] if arg != "--alone"]
    report = {
        "here": sections_of(paths, counter, workers=0),
        "workers": sections_of(paths[::-1], counter, workers=1),
    }
    if alone:
        report["alone"] = {path.name: sections_of([path], counter, workers=0)[path.name] for path in paths}
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
