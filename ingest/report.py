"""The ingestion report (what `--report FILE` writes) and the progress display that fills it live."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import InputError

log = logging.getLogger("ragkit.ingest")


@dataclass
class IngestReport:
    """Counts of one job. `ok` is what the CLI's exit code reflects: no document failed."""

    collection: str
    model: str
    documents_seen: int = 0
    documents_ingested: int = 0
    documents_unchanged: int = 0
    documents_failed: list[dict[str, str]] = field(default_factory=list)
    documents_skipped: list[dict[str, str]] = field(default_factory=list)
    documents_deleted: int = 0
    sections_embedded: int = 0
    sections_deleted: int = 0
    tokens_embedded: int = 0
    # Sections whose breadcrumb was cut to half the token limit (the section text keeps every heading).
    breadcrumbs_shortened: int = 0
    # Building the vector index after the last write (beside the live shard: searches go on).
    index_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.documents_failed

    def fail(self, path: Path, error: str) -> None:
        """Record a failure whose error names the document once: most errors name it already."""
        named = error if error.startswith(f"{path}: ") else f"{path}: {error}"
        self.documents_failed.append({"path": str(path), "error": named})

    def skip(self, path: Path, reason: str) -> None:
        self.documents_skipped.append({"path": str(path), "reason": reason})

    def add(self, part: IngestReport) -> None:
        """Fold in the counts of a part of the same job (what one Ray writer batch did)."""
        for name in (
            "documents_ingested",
            "sections_embedded",
            "sections_deleted",
            "tokens_embedded",
            "breadcrumbs_shortened",
        ):
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.documents_failed.extend(part.documents_failed)
        self.documents_skipped.extend(part.documents_skipped)

    def finish(self, started: float, file: Path | None) -> IngestReport:
        """Stamp the job's duration (since `perf_counter()` was `started`), log the summary, write `file`.

        Failures and skips are put in path order: they are found in the order parsing processes (or Ray
        tasks) finish, and the same job must give the same report."""
        self.seconds = round(time.perf_counter() - started, 3)
        self.documents_failed.sort(key=lambda entry: (entry["path"], entry["error"]))
        self.documents_skipped.sort(key=lambda entry: (entry["path"], entry["reason"]))
        log.info(self.summary())
        if file is not None:
            self.write(file)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "tokens_per_second": round(self.tokens_embedded / self.seconds, 1) if self.seconds else 0
        }

    def write(self, file: Path) -> None:
        try:
            file.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _unwritable(file, exc) from exc

    def summary(self) -> str:
        return (
            f"{self.documents_seen} documents: {self.documents_ingested} ingested, {self.documents_unchanged} "
            f"unchanged, {len(self.documents_failed)} failed, {len(self.documents_skipped)} skipped, "
            f"{self.documents_deleted} pruned; {self.sections_embedded} sections embedded "
            f"({self.tokens_embedded:,} tokens), {self.sections_deleted} deleted, in {self.seconds:.1f}s "
            f"(index build {self.index_seconds:.1f}s)"
            + (f"; {self.breadcrumbs_shortened} breadcrumbs shortened" if self.breadcrumbs_shortened else "")
        )


def check_writable(file: Path | None) -> None:
    """Refuse a report file that cannot be written before the job starts, rather than after all its work
    (the file is opened for appending, which changes nothing; one made by the check is removed)."""
    if file is None:
        return
    existed = file.exists()
    try:
        with file.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise _unwritable(file, exc) from exc
    if not existed:
        file.unlink()


def _unwritable(file: Path, exc: OSError) -> InputError:
    return InputError(f"cannot write the report to {file}: {exc.strerror or exc}")


class Progress:
    """A progress bar on a terminal (documents, sections, tokens/s, ETA); plain log lines otherwise."""

    def __init__(self, total_documents: int, *, enabled: bool, interval: float = 5.0) -> None:
        self._bar = None
        self._started = self._last = time.perf_counter()
        self._interval = interval
        self._total = total_documents
        self.documents = self.sections = self.tokens = 0
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_documents, unit="doc", desc="ingesting", dynamic_ncols=True)
        self._enabled = enabled

    def advance(self, documents: int = 0, sections: int = 0, tokens: int = 0) -> None:
        self.documents += documents
        self.sections += sections
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self._started, 1e-9)
        if self._bar is not None:
            self._bar.update(documents)
            self._bar.set_postfix(sections=self.sections, tok_s=f"{rate:,.0f}", refresh=False)
        elif self._enabled and time.perf_counter() - self._last >= self._interval:
            self._last = time.perf_counter()
            log.info(
                "%d/%d documents, %d sections, %.0f tokens/s",
                self.documents,
                self._total,
                self.sections,
                rate,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
