"""Hits -> context -> answer: retrieval-augmented answers with numbered, checkable sources.

Sections are whole by construction (ragkit embeds a heading with everything under it), so the context
is made of whole sections too, best first, each under a citation header. Only the section that meets the
token budget is cut, and then by relevance: its sentences are scored against the question with the
collection's own encoder and the best ones kept, in reading order, with the gaps marked. A reader of the
answer can always find the cited words in the cited section.

Without an LLM the engine still answers: the sentences of the context most similar to the question,
each with its citation. That is a useful result on its own (and a fast one), not a placeholder.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ragkit.errors import InputError
from ragkit.llm import LLM, as_llm
from ragkit.retrieval import DEFAULT_FUSION, DEFAULT_MODE, Hit
from ragkit.sentences import SENTENCE_END

if TYPE_CHECKING:
    from ragkit.retrieval import Searcher

DEFAULT_TOP_K = 5
DEFAULT_CONTEXT_TOKENS = 3000
MIN_CONTEXT_TOKENS = 64
EXTRACTIVE_SENTENCES = 3
# Headings and list stubs are sentences to the splitter but say nothing on their own.
MIN_ANSWER_WORDS = 5
ELISION = "[...]"

# Sentence ends (a closing quote or bracket may follow the stop) and line breaks; both are whitespace
# gaps, so slicing between them never splits a word and keeps the text's own spacing.
_SENTENCE_GAP = re.compile(SENTENCE_END + r"|\s*\n\s*")

PROMPT = """\
Answer the question using only the numbered sources below. After each statement, cite the sources \
that support it by number in square brackets, like [1] or [2][3]. If the sources do not contain the \
answer, say that they do not, rather than guessing.

Sources:

{context}

Question: {question}
Answer:"""


@dataclass(frozen=True)
class Source:
    """One section as the answer saw it: `text` is what went into the context (trimmed when `trimmed`)."""

    citation: int
    id: str
    source: str
    title: str
    breadcrumb: list[str]
    page_start: int | None
    page_end: int | None
    score: float
    text: str
    trimmed: bool = False

    @property
    def header(self) -> str:
        """`[n] Title > Section (file, pages a-b)`: enough for a person to find the words cited."""
        place = " > ".join(self.breadcrumb) or self.title
        where = self.source
        if self.page_start is not None:
            end = self.page_end if self.page_end is not None else self.page_start
            where += (
                f", page {self.page_start}" if end == self.page_start else f", pages {self.page_start}-{end}"
            )
        return f"[{self.citation}] {place} ({where})"


@dataclass(frozen=True)
class QueryResponse:
    """The answer, the numbered sources its citations refer to, and seconds spent per stage."""

    question: str
    answer: str
    sources: list[Source]
    timings: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryEngine:
    """Answers questions from one collection; build it with `kit.query_engine(...)`.

    `searcher` is anything that searches a collection and has its encoder (a `Kit`, a `Retriever`).
    `llm` is a function prompt -> str, a LangChain chat model, a LlamaIndex LLM, a `ragkit.llm.LLM`, or
    None for the OpenAI-compatible server in RAGKIT_LLM_URL, and failing that an extractive answer.
    """

    def __init__(
        self,
        searcher: Searcher,
        llm: Any = None,
        *,
        top_k: int = DEFAULT_TOP_K,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: str = DEFAULT_MODE,
        fusion: str = DEFAULT_FUSION,
    ) -> None:
        if isinstance(context_tokens, bool) or not isinstance(context_tokens, int):
            raise InputError(f"context_tokens must be an integer, got {context_tokens!r}")
        if context_tokens < MIN_CONTEXT_TOKENS:
            raise InputError(
                f"context_tokens must be at least {MIN_CONTEXT_TOKENS} to hold one source, got {context_tokens}"
            )
        self.searcher = searcher
        self.llm: LLM | None = as_llm(llm)
        self.top_k = top_k
        self.context_tokens = context_tokens
        self.filters = filters
        self.score_threshold = score_threshold
        self.mode = mode
        self.fusion = fusion

    def query(self, question: str) -> QueryResponse:
        """Retrieve, assemble the context, answer."""
        clock = _Clock()
        hits = self.searcher.search(question, **self._search_options())
        clock.lap("retrieve")
        sources = self.context(question, hits)
        clock.lap("context")
        if not sources:
            answer = self._nothing_found()
        elif self.llm is None:
            answer = self.extract(question, sources)
        else:
            answer = self.llm.complete(self.prompt(question, sources))
        clock.lap("answer")
        return QueryResponse(question, answer, sources, clock.timings())

    async def aquery(self, question: str) -> QueryResponse:
        """`query` without blocking the event loop: encoder work runs in worker threads."""
        clock = _Clock()
        hits = await self.searcher.asearch(question, **self._search_options())
        clock.lap("retrieve")
        sources = await asyncio.to_thread(self.context, question, hits)
        clock.lap("context")
        if not sources:
            answer = self._nothing_found()
        elif self.llm is None:
            answer = await asyncio.to_thread(self.extract, question, sources)
        else:
            answer = await self.llm.acomplete(self.prompt(question, sources))
        clock.lap("answer")
        return QueryResponse(question, answer, sources, clock.timings())

    def context(self, question: str, hits: list[Hit]) -> list[Source]:
        """Whole sections in score order, duplicates dropped, until `context_tokens` is spent.

        The section that does not fit whole is trimmed to its most relevant sentences and ends the
        context: skipping ahead to smaller, less relevant sections would reorder the evidence.

        When not even the best section fits, trimmed, this is an InputError naming the budget and what the
        section needs, not an empty context: the search did find it, so "nothing matched" would be
        false, and an answer over less than the best evidence (or past the budget the caller set to fit
        their model) would be worse than asking for a larger `context_tokens`.
        """
        sources: list[Source] = []
        seen: set[str] = set()
        left = self.context_tokens
        for hit in hits:
            key = " ".join(hit.text.split()).casefold()
            if key in seen:
                continue
            seen.add(key)
            source = _source(len(sources) + 1, hit)
            cost = self._tokens(_block(source))
            if cost <= left:
                sources.append(source)
                left -= cost
                continue
            room = left - self._tokens(source.header + "\n")
            trimmed = self._trim(question, hit.text, room) if room > 0 else None
            if trimmed is not None:
                sources.append(_replace_text(source, trimmed))
            elif not sources:
                raise self._too_small(source, cost)
            break
        return sources

    def _too_small(self, best: Source, cost: int) -> InputError:
        header = self._tokens(best.header + "\n")
        return InputError(
            f"context_tokens={self.context_tokens} cannot hold the best section found, {best.header}: "
            f"its header takes {header} tokens and no sentence of it fits beside it (the whole section "
            f"takes {cost}); raise context_tokens (ragkit query --context-tokens)"
        )

    def prompt(self, question: str, sources: list[Source]) -> str:
        """The grounded-answer prompt sent to the LLM."""
        return PROMPT.format(context="\n\n".join(_block(s) for s in sources), question=question.strip())

    def extract(self, question: str, sources: list[Source]) -> str:
        """The context's sentences most similar to the question, best first, each with its citation."""
        candidates = [
            (source.citation, sentence)
            for source in sources
            for part in source.text.split(ELISION)
            for sentence in _sentences(part)
            if len(sentence.split()) >= MIN_ANSWER_WORDS
        ]
        if not candidates:
            return "The sources found have no full sentences to quote: " + ", ".join(
                s.header for s in sources
            )
        scores = self._relevance(question, [sentence for _, sentence in candidates])
        best = np.argsort(-scores, kind="stable")[:EXTRACTIVE_SENTENCES]
        return " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in best)

    def _trim(self, question: str, text: str, room: int) -> str | None:
        """The best sentences of `text` that fit `room` tokens, in reading order, gaps marked."""
        spans = _sentence_spans(text)
        pieces = [text[start:end] for start, end in spans]
        scores = self._relevance(question, pieces)
        costs = self._token_counts(pieces)
        gap = self._tokens(f" {ELISION} ")
        chosen: set[int] = set()
        used = 0
        for i in np.argsort(-scores, kind="stable"):
            if used + costs[i] + gap <= room:
                chosen.add(int(i))
                used += costs[i] + gap
        # Counts are not exactly additive over joins; drop the weakest sentence until the whole fits.
        while chosen:
            trimmed = _join(text, spans, sorted(chosen))
            if self._tokens(trimmed) <= room:
                return trimmed
            chosen.remove(min(chosen, key=lambda i: scores[i]))
        return None

    def _relevance(self, question: str, texts: list[str]) -> np.ndarray:
        vectors = self.searcher.encoder.encode([question, *texts], truncate=True)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors[1:] @ vectors[0]

    def _token_counts(self, texts: list[str]) -> list[int]:
        """Tokens as the encoder's tokenizer counts them, without its [CLS]/[SEP]-style specials."""
        counts = self.searcher.encoder.count_tokens(["", *texts])
        return [count - counts[0] for count in counts[1:]]

    def _tokens(self, text: str) -> int:
        return self._token_counts([text])[0]

    def _search_options(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "filters": self.filters,
            "score_threshold": self.score_threshold,
            "mode": self.mode,
            "fusion": self.fusion,
        }

    def _nothing_found(self) -> str:
        return f"No section of collection {self.searcher.collection!r} matched the question."


class _Clock:
    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = now - self._last
        self._last = now

    def timings(self) -> dict[str, float]:
        return {**self._laps, "total": self._last - self._start}


def _source(citation: int, hit: Hit) -> Source:
    meta = hit.metadata
    return Source(
        citation=citation,
        id=hit.id,
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        breadcrumb=list(meta.get("breadcrumb") or []),
        page_start=meta.get("page_start"),
        page_end=meta.get("page_end"),
        score=hit.score,
        text=hit.text,
    )


def _replace_text(source: Source, text: str) -> Source:
    return Source(**{**asdict(source), "text": text, "trimmed": True})


def _block(source: Source) -> str:
    return f"{source.header}\n{source.text}"


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for gap in _SENTENCE_GAP.finditer(text):
        if gap.start() > start:
            spans.append((start, gap.start()))
        start = gap.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _sentences(text: str) -> list[str]:
    return [text[start:end].strip() for start, end in _sentence_spans(text) if text[start:end].strip()]


def _join(text: str, spans: list[tuple[int, int]], chosen: list[int]) -> str:
    """Runs of neighbouring sentences keep the original text between them; other gaps become ELISION."""
    runs: list[list[int]] = []
    for i in chosen:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    parts = [text[spans[first][0] : spans[last][1]] for first, last in runs]
    if runs[0][0] > 0:
        parts.insert(0, "")
    if runs[-1][1] < len(spans) - 1:
        parts.append("")
    return f" {ELISION} ".join(parts).strip()
