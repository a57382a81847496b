"""Fixed-size token windows cut at word boundaries: the baseline that whole sections are measured against.

This is the chunking most RAG stacks do by default (no overlap, no regard for headings), so that
`--strategy chunk` answers "what would I get without ragkit's sectioning?". Windows are packed from
per-word token counts, which add up exactly for WordPiece tokenizers and nearly for others; every window
is then counted whole, and the rare one that still exceeds the limit is halved until it fits, so no
window is ever truncated by the encoder.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ragkit.encoder.tokens import CountTokens

_WORD = re.compile(r"\S+")


class Chunk(NamedTuple):
    """A window of the text, as it is embedded."""

    text: str
    tokens: int  # special tokens included: what the encoder's limit applies to


def chunk_text(text: str, count_tokens: CountTokens, max_tokens: int) -> list[Chunk]:
    """Consecutive windows of `text`, each at most `max_tokens` tokens as the model counts them."""
    words = [match.span() for match in _WORD.finditer(text)]
    if not words:
        return []
    specials = count_tokens([""])[0]
    budget = max_tokens - specials
    counts = count_tokens([text[start:end] for start, end in words])
    windows: list[tuple[int, int]] = []
    start, end, filled = words[0][0], words[0][0], 0
    for (word_start, word_end), count in zip(words, counts, strict=True):
        tokens = count - specials
        if filled and filled + tokens > budget:
            windows.append((start, end))
            start, filled = word_start, 0
        end = word_end
        filled += tokens
    windows.append((start, end))
    return _settle(text, windows, count_tokens, max_tokens)


def _settle(
    text: str, windows: list[tuple[int, int]], count_tokens: CountTokens, max_tokens: int
) -> list[Chunk]:
    pieces = [text[a:b] for a, b in windows]
    settled: list[Chunk] = []
    for window, piece, tokens in zip(windows, pieces, count_tokens(pieces), strict=True):
        if tokens <= max_tokens:
            settled.append(Chunk(piece, tokens))
        else:
            settled.extend(_settle(text, _halve(text, *window), count_tokens, max_tokens))
    return settled


def _halve(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Two windows split at the word gap nearest the middle; a single long "word" splits mid-string."""
    gaps = [match.span() for match in re.finditer(r"\s+", text[start:end])]
    middle = (end - start) // 2
    if not gaps:
        return [(start, start + middle), (start + middle, end)]
    gap_start, gap_end = min(gaps, key=lambda gap: abs(gap[0] - middle))
    return [(start, start + gap_start), (start + gap_end, end)]
