"""The work of a parsing process: one file in, its sections (or its error) out.

Kept apart from the pipeline so that worker processes import only parsing and tokenizing, not torch
or the store client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ingest.parse import parse
from ingest.sections import Section, build_sections
from ragkit.encoder.tokens import TokenCounter


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
