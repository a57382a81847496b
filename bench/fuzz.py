"""Fuzz the ingestion job: thousands of mutated documents of every supported format, ingested for real.

    python -m bench.fuzz --count 2000 --seed 1 [--workers 2] [--parse-timeout 30] [--full-size]
                         [--outcomes F]

Prints files tried, outcome counts (ingested, failed, skipped, and failures by cause), the slowest
parses, and peak RSS: of the job's own process, of its largest parsing child, and of all of them
together. `--outcomes F` writes each file's outcome (one JSON line per file, sorted), so that two runs
of one seed can be compared line by line: the same files must give the same outcomes. The hand-built
hostile cases (zip bombs, an enormous line, deep HTML, broken, cyclic and lying PDFs) are always included; `--full-size` adds the issue's 1.5 GiB docx bomb and a PDF of 20,000
pages. (The issue's 10 MB line is left out: parsed and sectioned in under a minute now, its 2.6 M
tokens then take far longer to embed on a CPU.) Not a test: it passes or fails nothing, it reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

import ragkit
from ingest.report import IngestReport
from tests import hostile

_PARSED = re.compile(r"parsed (.+) in ([0-9.]+) s")


class _ParseTimes(logging.Handler):
    """Collects the per-document parse durations that ingest.isolation logs at debug level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if match := _PARSED.fullmatch(record.getMessage()):
            self.seconds[match.group(1)] = float(match.group(2))


class _PeakMemory:
    """Samples the RSS of this process and its children every 50 ms."""

    def __init__(self) -> None:
        self.own = self.child = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            own = me.memory_info().rss
            children = []
            for child in me.children(recursive=True):
                try:
                    children.append(child.memory_info().rss)
                except psutil.Error:
                    continue
            self.own = max(self.own, own)
            self.child = max([self.child, *children])
            self.total = max(self.total, own + sum(children))


def _cause(error: str, path: str) -> str:
    """A failure's cause without the file name and the specifics, to count failures by kind."""
    cause = error.removeprefix(f"{path}: ")
    cause = re.sub(r"'[^']*'|\"[^\"]*\"|\d[\d,.]*", "…", cause)
    return cause[:90]


def _write_outcomes(file: Path, paths: list[Path], report: IngestReport) -> None:
    """One line per file, by name: ingested, skipped or failed with its cause (the file name left out)."""
    outcome = {Path(p).name: {"outcome": "ingested"} for p in paths}
    for entry in report.documents_skipped:
        outcome[Path(entry["path"]).name] = {"outcome": "skipped", "reason": entry["reason"]}
    for entry in report.documents_failed:
        outcome[Path(entry["path"]).name] = {
            "outcome": "failed",
            "cause": _cause(entry["error"], entry["path"]),
        }
    with file.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps({"file": name, **outcome[name]}) + "\n" for name in sorted(outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="mutated files (the built cases come on top)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="parsing processes")
    parser.add_argument("--parse-timeout", type=float, default=30.0)
    parser.add_argument("--full-size", action="store_true", help="add a 1.5 GiB docx bomb, a 20,000-page PDF")
    parser.add_argument("--keep", type=Path, help="write the files here instead of a temporary folder")
    parser.add_argument("--outcomes", type=Path, help="write each file's outcome here, as JSON lines")
    args = parser.parse_args()

    times = _ParseTimes()
    logger = logging.getLogger("ragkit.ingest")
    logger.addHandler(times)
    logger.setLevel(logging.DEBUG)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch) / "docs"
        built = list(hostile.built_to_hurt())
        if args.full_size:
            built += [
                (
                    "full-zip-bomb.docx",
                    hostile.zip_bomb(hostile.SEEDS[".docx"](), "word/document.xml", 1536 * 2**20),
                ),
                ("full-many-pages.pdf", hostile.pdf_many_pages(20_000)),
            ]
        paths = hostile.write(folder, hostile.mutated(args.count, args.seed))
        paths += hostile.write(folder, iter(built))
        started = time.perf_counter()
        with (
            _PeakMemory() as memory,
            ragkit.open("fuzz", store=Path(scratch) / "store", model="minilm") as kit,
        ):
            report = kit.ingest([folder], workers=args.workers, parse_timeout=args.parse_timeout)
        elapsed = time.perf_counter() - started

    if args.outcomes:
        _write_outcomes(args.outcomes, paths, report)
    causes = Counter(_cause(entry["error"], entry["path"]) for entry in report.documents_failed)
    slowest = sorted(times.seconds.items(), key=lambda item: -item[1])[:5]
    unaccounted = report.documents_seen - (
        report.documents_ingested + len(report.documents_failed) + len(report.documents_skipped)
    )
    print(f"files tried: {len(paths)} ({args.count} mutated, seed {args.seed}; {len(built)} built to hurt)")
    print(
        f"outcomes: {report.documents_ingested} ingested, {len(report.documents_failed)} failed, "
        f"{len(report.documents_skipped)} skipped, {unaccounted} unaccounted for; {elapsed:.0f} s in all"
    )
    print("failures by cause:")
    for cause, count in causes.most_common(15):
        print(f"  {count:5d}  {cause}")
    print("slowest parses:")
    for path, seconds in slowest:
        print(f"  {seconds:8.2f} s  {Path(path).name}")
    print(
        f"peak RSS: job process {memory.own / 2**20:,.0f} MiB, largest parsing process "
        f"{memory.child / 2**20:,.0f} MiB, all together {memory.total / 2**20:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
