"""Retrieval datasets in the BEIR layout, read strictly: a bad line is named, never skipped.

A folder holds `corpus.jsonl` (`{"_id", "title", "text"}` per line), `queries.jsonl` (`{"_id", "text"}`)
and `qrels/<split>.tsv` (a `query-id corpus-id score` header, then tab-separated rows). A metric computed
over a silently half-read dataset looks like a result and is not one, so every problem stops the load
with the file and line at fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import InputError

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_HEADER = ("query-id", "corpus-id", "score")


class DatasetError(InputError):
    """A dataset folder is missing a file or holds a malformed or inconsistent line."""


@dataclass(frozen=True)
class Document:
    """One corpus entry; `id` is what the qrels name and what retrieval reports back."""

    id: str
    title: str
    text: str


@dataclass
class Dataset:
    """A corpus, its queries and graded relevance judgments (`qrels[query_id][doc_id] = grade`)."""

    name: str
    documents: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)

    @property
    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one relevant document: the only ones a ranking metric can score."""
        return {
            qid: text
            for qid, text in self.queries.items()
            if any(grade > 0 for grade in self.qrels.get(qid, {}).values())
        }


def load_beir(folder: str | Path, *, split: str = "test") -> Dataset:
    """Read a BEIR-layout folder; raises DatasetError naming the file and line of the first problem."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (or is not a folder)")
    qrels_file = root / "qrels" / f"{split}.tsv"
    missing = [
        str(path) for path in (root / CORPUS_FILE, root / QUERIES_FILE, qrels_file) if not path.is_file()
    ]
    if missing:
        raise DatasetError(
            f"dataset folder {root} is missing {', '.join(missing)}; a BEIR-layout folder holds "
            f"{CORPUS_FILE}, {QUERIES_FILE} and qrels/{split}.tsv"
        )
    documents = {doc.id: doc for doc in _read_corpus(root / CORPUS_FILE)}
    queries = dict(_read_queries(root / QUERIES_FILE))
    qrels = _read_qrels(qrels_file, queries, documents)
    dataset = Dataset(root.resolve().name, documents, queries, qrels)
    _check_judged(dataset, qrels_file)
    return dataset


def _check_judged(dataset: Dataset, qrels_file: Path) -> None:
    judged = dataset.judged_queries
    if not judged:
        raise DatasetError(f"{qrels_file}: no query has a relevant document (a score above 0)")
    unjudged = len(dataset.qrels.keys() - judged.keys())
    if unjudged:
        dataset.notes.append(
            f"{unjudged} queries in {qrels_file.name} have no relevant document and are not evaluated"
        )


def _read_corpus(file: Path) -> Iterator[Document]:
    empty = True
    for lineno, doc_id, record in _records(file):
        empty = False
        yield Document(doc_id, _text(record, "title", file, lineno), _text(record, "text", file, lineno))
    if empty:
        raise DatasetError(f"{file}: the corpus is empty")


def _read_queries(file: Path) -> Iterator[tuple[str, str]]:
    for lineno, query_id, record in _records(file):
        text = _text(record, "text", file, lineno)
        if not text.strip():
            raise DatasetError(f"{file}:{lineno}: query {query_id!r} has no text")
        yield query_id, text


def _records(file: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, _id, record) of each JSON line, refusing an _id seen before."""
    first_line: dict[str, int] = {}
    for lineno, record in _jsonl(file):
        record_id = _id(record, file, lineno)
        if record_id in first_line:
            raise DatasetError(
                f"{file}:{lineno}: duplicate _id {record_id!r} (first on line {first_line[record_id]})"
            )
        first_line[record_id] = lineno
        yield lineno, record_id, record


def _read_qrels(
    file: Path, queries: dict[str, str], documents: dict[str, Document]
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}  # a pair judged twice has no one grade to keep
    unknown: list[str] = []
    for index, (lineno, line) in enumerate(_lines(file)):
        fields = line.rstrip("\r\n").split("\t")
        if index == 0 and tuple(f.strip() for f in fields) == QRELS_HEADER:
            continue
        if len(fields) != 3:
            raise DatasetError(
                f"{file}:{lineno}: expected 3 tab-separated fields ({' '.join(QRELS_HEADER)}), "
                f"got {len(fields)}: {line.strip()!r}"
            )
        query_id, doc_id, grade = (f.strip() for f in fields)
        try:
            score = int(grade)
        except ValueError:
            raise DatasetError(f"{file}:{lineno}: score {grade!r} is not an integer") from None
        if query_id not in queries:
            unknown.append(f"{file}:{lineno}: query-id {query_id!r} is not in {QUERIES_FILE}")
        elif doc_id not in documents:
            unknown.append(f"{file}:{lineno}: corpus-id {doc_id!r} is not in {CORPUS_FILE}")
        elif (query_id, doc_id) in first_line:
            raise DatasetError(
                f"{file}:{lineno}: query-id {query_id!r} judges corpus-id {doc_id!r} again "
                f"(first on line {first_line[query_id, doc_id]})"
            )
        else:
            first_line[query_id, doc_id] = lineno
            qrels.setdefault(query_id, {})[doc_id] = score
    if unknown:
        more = f" (and {len(unknown) - 1} more such lines)" if len(unknown) > 1 else ""
        raise DatasetError(unknown[0] + more)
    return qrels


def _lines(file: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with 1-based numbers, decoded one at a time so a bad byte is placed exactly."""
    with file.open("rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{file}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            if line.strip():
                yield lineno, line


def _jsonl(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(file):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{file}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{file}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def _id(record: dict[str, Any], file: Path, lineno: int) -> str:
    value = record.get("_id")
    # BEIR ids are strings, but some exports write numbers; the qrels compare them as text either way.
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise DatasetError(f'{file}:{lineno}: missing or empty "_id" (a string)')
    return str(value)


def _text(record: dict[str, Any], key: str, file: Path, lineno: int) -> str:
    value = record.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{file}:{lineno}: {key!r} must be a string, got {type(value).__name__}")
    return value
