"""What gets embedded for each corpus document: ragkit's whole sections, or fixed token windows.

Both strategies produce the same `Unit`, so indexing, search and scoring cannot tell them apart and a
difference in the metrics comes from the cutting alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragkit.encoder.tokens import CountTokens
from ragkit.errors import InputError
from ragkit.evaluation.chunks import chunk_text
from ragkit.evaluation.dataset import Document
from ragkit.evaluation.markdown import parsed_document
from ragkit.evaluation.options import STRATEGIES, Strategy
from ragkit.store import point_id

MIN_CHUNK_TOKENS = 16


@dataclass(frozen=True)
class Unit:
    """One embedded piece of a document; `embed_text` is what the encoder sees, `text` what a hit shows."""

    doc_id: str
    position: int
    count: int
    title: str
    breadcrumb: tuple[str, ...]
    text: str
    embed_text: str
    tokens: int

    @property
    def point_id(self) -> str:
        return point_id(self.doc_id, self.position, self.embed_text)


def unit_limit(strategy: Strategy, chunk_tokens: int, model_limit: int) -> tuple[int, str | None]:
    """Tokens allowed per unit, and a note when the requested chunk size had to come down to the model's."""
    if strategy not in STRATEGIES:
        raise InputError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "section":
        return model_limit, None
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise InputError(f"--chunk-tokens must be at least {MIN_CHUNK_TOKENS}, got {chunk_tokens}")
    if chunk_tokens > model_limit:
        return model_limit, (
            f"--chunk-tokens {chunk_tokens} is over the model's limit of {model_limit} tokens; "
            f"chunks of {model_limit} tokens were used"
        )
    return chunk_tokens, None


def document_units(
    document: Document, strategy: Strategy, count_tokens: CountTokens, max_tokens: int
) -> list[Unit]:
    """The units of one document, in reading order; none for a document without text."""
    title = " ".join(document.title.split())
    pieces: list[tuple[tuple[str, ...], str, str, int]]
    if strategy == "section":
        from ingest.sections import build_sections  # ragkit imports ingest only where used (DESIGN.md)

        sections = build_sections(parsed_document(document), count_tokens=count_tokens, max_tokens=max_tokens)
        pieces = [(s.breadcrumb, s.text, s.embed_text, s.tokens) for s in sections]
    else:
        # The title leads the text, as in a file, so only the first chunk carries it: the naive baseline.
        full = f"{title}\n\n{document.text}" if title else document.text
        crumb = (title,) if title else ()
        pieces = [(crumb, c.text, c.text, c.tokens) for c in chunk_text(full, count_tokens, max_tokens)]
    return [
        Unit(document.id, i, len(pieces), title, breadcrumb, text, embed_text, tokens)
        for i, (breadcrumb, text, embed_text, tokens) in enumerate(pieces)
    ]
