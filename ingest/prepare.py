"""The work of a parsing process: one file in, its sections (or its error) out.

Every document is prepared in a parsing child process (`ingest.isolation`, `ingest.worker`), for the
one-machine pipeline and for a Ray parsing task alike.

Kept apart from the pipeline so that worker processes import only parsing and tokenizing, not torch
or the store client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ingest.parse import UnsupportedFormatError, parse
from ingest.report import IngestReport
from ingest.sections import Section, build_sections
from ragkit.encoder.tokens import TokenCounter
from ragkit.errors import RagkitError


@dataclass
class DocState:
    """What the collection holds for one document."""

    source: str = ""
    ids: list[str] = field(default_factory=list)
    hashes: set[str] = field(default_factory=set)
    section_count: int = -1

    def complete(self, doc_hash: str) -> bool:
        return self.hashes == {doc_hash} and len(self.ids) == self.section_count


@dataclass
class Job:
    path: Path
    doc_id: str
    doc_hash: str
    old: DocState | None


@dataclass
class Prepared:
    job: Job
    title: str
    sections: list[Section]


def prepare(job: Job, counter: TokenCounter, max_tokens: int) -> Prepared:
    """Parse and section one document."""
    document = parse(job.path)
    sections = build_sections(document, count_tokens=counter, max_tokens=max_tokens)
    return Prepared(job, document.title, sections)


def reportable(exc: Exception) -> Exception:
    """The error as the report names it: ours as they are, anything else with its type."""
    if isinstance(exc, RagkitError):
        return exc
    return RagkitError(f"{type(exc).__name__}: {exc}")


def report_error(result: IngestReport, job: Job, error: Exception) -> None:
    """A document in a format that turned out unsupported is skipped; any other error is a failure. One
    that had points loses them with the job's next write (`points.write`), as a clean run would hold
    none of them; its entry says so."""
    message = str(error)
    if job.old is not None and job.old.ids:
        count = len(job.old.ids)
        message += f"; its previous version was removed ({count} section{'s' if count != 1 else ''})"
    if isinstance(error, UnsupportedFormatError):
        result.skip(job.path, message)
    else:
        result.fail(job.path, message)
