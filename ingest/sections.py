"""Cut a parsed document into whole sections that each fit the encoder in one piece.

ragkit embeds a heading together with everything under it, because a whole section answers questions
that its paragraphs alone cannot. So sections are only cut when they must be, and then along the
document's own seams, coarsest first: child headings, blocks, sentences (lines in tables and code),
words, and only for a single "word" longer than the limit (a base64 blob), token-sized pieces.

Token counts are not additive across concatenation in general, so the plan is made from counts of the
blocks (one batched call) and every assembled section is then counted exactly; the few that turn out
over the limit are cut further, so `Section.tokens <= max_tokens` always holds.

A breadcrumb is only context for the text it leads, so it may take at most half of `max_tokens`; one
longer (a heading of a hundred words under MiniLM's 256 tokens) is shortened instead of failing the
document or leaving its text a few tokens a section. The headings themselves stay in the text, in full.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ingest.document import CODE, HEADING, TABLE, ParsedDocument
from ragkit.encoder.batching import consecutive_groups
from ragkit.encoder.tokens import CountTokens
from ragkit.errors import InputError
from ragkit.sentences import SENTENCE_END

BLOCK_SEPARATOR = "\n\n"
CRUMB_SEPARATOR = " > "
ELISION = "\u2026"
"""Where a shortened breadcrumb left out headings, or the end of one."""

logger = logging.getLogger(__name__)

# Every cut point is whitespace only, so the separator dropped where a section starts loses no text.
_LINE_GAP = r"\s*\n"
_SENTENCE_GAP = re.compile(SENTENCE_END + "|" + _LINE_GAP)
_WORD_GAP = re.compile(r"\s+")
_PROSE_LADDER = (_SENTENCE_GAP, _WORD_GAP)
# A sentence end inside a table cell or a code line is no seam; rows and lines are.
_ROW_LADDER = (re.compile(_LINE_GAP), _WORD_GAP)
# A cut's pieces are joined into runs of about budget / this many tokens before they are counted.
_PIECES_PER_BUDGET = 16
# Characters per tokenizer call, and per block counted whole: the tokenizer keeps per-character
# alignments of what it holds, gigabytes for a 10 MB block or a whole document of small pieces at once.
COUNT_BATCH_CHARS = 1 << 20
_BLOCK_CHARS = 1 << 16


@dataclass(frozen=True)
class Section:
    """One retrievable unit: a heading and its content (or a part of them), ready to embed."""

    text: str
    breadcrumb: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    tokens: int
    breadcrumb_shortened: bool = False  # in full it took over half of max_tokens; the texts hold it all

    @property
    def embed_text(self) -> str:
        """The breadcrumb travels with the text, so a section is found by its place as well as its words."""
        return embedded_text(self.breadcrumb, self.text)


def build_sections(
    doc: ParsedDocument, *, count_tokens: CountTokens, max_tokens: int, min_tokens: int = 64
) -> list[Section]:
    """Sections of `doc` in reading order; together their texts hold every word of the document once.

    `max_tokens` bounds each section's `embed_text` exactly, as `count_tokens` counts it. `min_tokens`
    bounds the text (breadcrumb excluded: it holds no content of its own) under which a section is
    merged with its parent or a sibling, where the result still fits.
    """
    if max_tokens < 1 or min_tokens < 0:
        raise InputError(f"need max_tokens >= 1 and min_tokens >= 0, got {max_tokens} and {min_tokens}")
    return _Sectioner(count_tokens, max_tokens, min_tokens).run(doc)


@dataclass(frozen=True)
class _Atom:
    """A piece of text that is never cut further unless it alone exceeds the budget of its section."""

    text: str
    separator: str  # the whitespace before it in the document, kept wherever both sides share a section
    tokens: int  # content tokens, special tokens excluded, so that atoms add up
    page: int | None
    ladder: tuple[re.Pattern[str], ...]  # the finer seams still available to cut it, coarsest first


@dataclass(eq=False)
class _Node:
    """A heading with its own blocks and its subsections; the root holds the blocks before any heading."""

    breadcrumb: tuple[str, ...]
    level: int
    own: list[_Atom] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    body_tokens: int = 0  # content tokens of the whole subtree


@dataclass(frozen=True)
class _Draft:
    """A section before its exact count, remembering how to come apart should that count be too high."""

    breadcrumb: tuple[str, ...]
    atoms: tuple[_Atom, ...]
    node: _Node | None = None  # a whole subtree with subsections: it splits at their headings first
    parts: tuple[_Draft, ...] = ()  # the drafts a merge joined: it separates back into them

    @cached_property
    def body_tokens(self) -> int:
        return sum(atom.tokens for atom in self.atoms)

    @cached_property
    def text(self) -> str:
        first, *rest = self.atoms
        return first.text + "".join(atom.separator + atom.text for atom in rest)


class _Sectioner:
    """Holds the counter and the limits for one document, so the steps below stay small."""

    def __init__(self, count_tokens: CountTokens, max_tokens: int, min_tokens: int) -> None:
        self._count_tokens = count_tokens
        self._max = max_tokens
        self._min = min_tokens
        self._specials = 0
        # Tokens of each breadcrumb as embedded, and the shortened form of those that are too long.
        self._crumb_tokens: dict[tuple[str, ...], int] = {}
        self._shortened: dict[tuple[str, ...], tuple[str, ...]] = {}

    def run(self, doc: ParsedDocument) -> list[Section]:
        root = self._outline(doc)
        if not root.own and not root.children:
            return []
        if self._shortened:
            logger.warning(
                "%s: %d breadcrumbs over half of max_tokens=%d shortened (their headings stay in the text)",
                doc.path,
                len(self._shortened),
                self._max,
            )
        return [section for group in self._settle(self._merge_tiny(self._plan(root))) for section in group]

    # -- outline: the heading tree, with every block and breadcrumb counted in one call --------------

    def _outline(self, doc: ParsedDocument) -> _Node:
        """The heading tree with every block and breadcrumb counted, and the specials, in one call."""
        root, nodes, blocks = _nest(doc)
        crumbs = [CRUMB_SEPARATOR.join(node.breadcrumb) for node in nodes]
        *counts, self._specials = self._count([*(block.text for block in blocks), *crumbs, ""])
        for block, tokens in zip(blocks, counts[: len(blocks)], strict=True):
            block.node.own.append(
                _Atom(block.text, block.separator, tokens - self._specials, block.page, block.ladder)
            )
        for node, tokens in zip(nodes, counts[len(blocks) :], strict=True):
            self._crumb_tokens[node.breadcrumb] = tokens
        self._shorten_breadcrumbs()
        _sum_bodies(root)
        return root

    def _shorten_breadcrumbs(self) -> None:
        """Shorten every breadcrumb over half of max_tokens a step at a time, all of them counted
        together each round, until it fits or cannot shrink (then `_fit` says there is no room)."""
        room = self._max // 2
        over = {crumb: crumb for crumb, tokens in self._crumb_tokens.items() if tokens > room}
        while over:
            shorter = {crumb: step for crumb, shown in over.items() if (step := _shorter(shown))}
            counts = self._count([CRUMB_SEPARATOR.join(shown) for shown in shorter.values()])
            over = {}
            for (crumb, shown), tokens in zip(shorter.items(), counts, strict=True):
                self._shortened[crumb] = shown
                self._crumb_tokens[crumb] = tokens
                if tokens > room:
                    over[crumb] = shown

    def _shown(self, breadcrumb: tuple[str, ...]) -> tuple[str, ...]:
        """The breadcrumb as it is embedded and stored: shortened where it was too long."""
        return self._shortened.get(breadcrumb, breadcrumb)

    # -- plan: whole subtrees where they fit, else the node's own blocks and then each subsection ----

    def _plan(self, node: _Node) -> list[_Draft]:
        if self._crumb_tokens[node.breadcrumb] + node.body_tokens <= self._max:
            return [_Draft(node.breadcrumb, tuple(_subtree_atoms(node)), node if node.children else None)]
        return self._split_at_headings(node)

    def _split_at_headings(self, node: _Node) -> list[_Draft]:
        drafts = self._pack(node.breadcrumb, node.own) if node.own else []
        for child in node.children:
            drafts.extend(self._plan(child))
        return drafts

    def _pack(
        self, breadcrumb: tuple[str, ...], atoms: Sequence[_Atom], budget: int | None = None
    ) -> list[_Draft]:
        """Fill drafts greedily with atoms; only an atom over the budget by itself is cut, so whatever
        fits (a block, a table) is never divided."""
        if budget is None:
            budget = self._max - self._crumb_tokens[breadcrumb]
        pieces: list[list[_Atom]] = []
        filled = 0
        for atom in self._fit(atoms, budget, breadcrumb):
            if not pieces or filled + atom.tokens > budget:
                pieces.append([])
                filled = 0
            pieces[-1].append(atom)
            filled += atom.tokens
        return [_Draft(breadcrumb, tuple(piece)) for piece in pieces]

    def _fit(self, atoms: Sequence[_Atom], budget: int, breadcrumb: tuple[str, ...]) -> list[_Atom]:
        """Cut every atom over the budget at its next seam, counting all new pieces of a round at once."""
        if budget < 1:
            raise InputError(
                f"max_tokens={self._max} leaves no room for text under the breadcrumb {breadcrumb}"
            )
        atoms = list(atoms)
        while oversized := [i for i, atom in enumerate(atoms) if atom.tokens > budget]:
            if any(len(atoms[i].text) == 1 for i in oversized):
                raise InputError(f"a single character exceeds the room max_tokens={self._max} leaves")
            cuts = {i: _cut(atoms[i], budget) for i in oversized}
            counts = iter(self._count([text for pieces, _ in cuts.values() for _, text in pieces]))
            refined: list[_Atom] = []
            for i, atom in enumerate(atoms):
                if i not in cuts:
                    refined.append(atom)
                    continue
                pieces, ladder = cuts[i]
                for separator, text in pieces:
                    tokens = next(counts) - self._specials
                    refined.append(_Atom(text, separator, tokens, atom.page, ladder))
            atoms = refined
        return atoms

    # -- merge: tiny sections join their parent or next sibling (else the previous one) --------------

    def _merge_tiny(self, drafts: list[_Draft]) -> list[_Draft]:
        merged: list[_Draft] = []
        for i, draft in enumerate(drafts):
            following = drafts[i + 1] if i + 1 < len(drafts) else None
            if merged and self._absorbs(merged[-1], draft, following):
                merged[-1] = self._join(merged[-1], draft)
            else:
                merged.append(draft)
        return merged

    def _absorbs(self, previous: _Draft, draft: _Draft, following: _Draft | None) -> bool:
        """A tiny draft prefers what follows it (a chapter heading belongs with its first subsection)."""
        if not self._joinable(previous, draft):
            return False
        if self._tiny(previous):
            return True
        return self._tiny(draft) and not (following is not None and self._joinable(draft, following))

    def _joinable(self, first: _Draft, second: _Draft) -> bool:
        """Only a parent with what it contains, or siblings, so a merge never spans unrelated chapters."""
        crumb = _common_prefix(first.breadcrumb, second.breadcrumb)
        related = (
            crumb == first.breadcrumb or len(first.breadcrumb) == len(second.breadcrumb) == len(crumb) + 1
        )
        fits = self._crumb_tokens[crumb] + first.body_tokens + second.body_tokens <= self._max
        return related and fits

    def _tiny(self, draft: _Draft) -> bool:
        return draft.body_tokens < self._min

    @staticmethod
    def _join(first: _Draft, second: _Draft) -> _Draft:
        crumb = _common_prefix(first.breadcrumb, second.breadcrumb)
        return _Draft(crumb, first.atoms + second.atoms, parts=(first, second))

    # -- settle: exact counts of the assembled texts; what is over comes apart, coarsest seam first --

    def _settle(self, drafts: list[_Draft]) -> list[list[Section]]:
        """The sections each draft becomes: all drafts are counted exactly in one call, and those over
        the limit come apart and are settled again, together."""
        counts = self._count([embedded_text(self._shown(draft.breadcrumb), draft.text) for draft in drafts])
        undone = {
            i: self._undo(draft, tokens)
            for i, (draft, tokens) in enumerate(zip(drafts, counts, strict=True))
            if tokens > self._max
        }
        resettled = iter(
            self._settle([piece for pieces in undone.values() for piece in pieces]) if undone else []
        )
        settled: list[list[Section]] = []
        for i, (draft, tokens) in enumerate(zip(drafts, counts, strict=True)):
            if i in undone:
                settled.append([section for _ in undone[i] for section in next(resettled)])
            else:
                settled.append([self._section(draft, tokens)])
        return settled

    def _section(self, draft: _Draft, tokens: int) -> Section:
        pages = [atom.page for atom in draft.atoms if atom.page is not None]
        return Section(
            text=draft.text,
            breadcrumb=self._shown(draft.breadcrumb),
            page_start=min(pages, default=None),
            page_end=max(pages, default=None),
            tokens=tokens,
            breadcrumb_shortened=draft.breadcrumb in self._shortened,
        )

    def _undo(self, draft: _Draft, tokens: int) -> list[_Draft]:
        """Each step is strictly finer than the last (a merge, a subtree, a tighter budget), so it ends."""
        if draft.parts:
            return list(draft.parts)
        if draft.node is not None:
            return self._split_at_headings(draft.node)
        return self._pack(draft.breadcrumb, draft.atoms, draft.body_tokens - (tokens - self._max))

    def _count(self, texts: list[str]) -> list[int]:
        counts = [
            count
            for group in consecutive_groups(texts, len, COUNT_BATCH_CHARS)
            for count in self._count_tokens(group)
        ]
        if len(counts) != len(texts):
            raise InputError(f"the token counter returned {len(counts)} counts for {len(texts)} texts")
        return counts


@dataclass(frozen=True)
class _Block:
    """An element's text, waiting for its count, with the node it belongs to."""

    node: _Node
    text: str
    page: int | None
    ladder: tuple[re.Pattern[str], ...]
    separator: str = BLOCK_SEPARATOR  # a part of a long block keeps the whitespace it was cut at


def _nest(doc: ParsedDocument) -> tuple[_Node, list[_Node], list[_Block]]:
    """Hang each block under the latest heading; a heading closes every open one of its level or deeper.

    Blank elements are skipped: they hold no text to lose. A heading without a level counts as a chapter.
    """
    root = _Node(breadcrumb=(_one_line(doc.title) or doc.path.name,), level=0)
    nodes, blocks, open_nodes = [root], [], [root]
    for element in doc.elements:
        text = element.text.strip()
        if not text:
            continue
        if element.kind == HEADING:
            level = max(element.level or 1, 1)
            while open_nodes[-1].level >= level:
                open_nodes.pop()
            parent, crumb = open_nodes[-1].breadcrumb, _one_line(text)
            # A document's first heading is usually its title: "Guide > Guide > Install" says nothing more.
            breadcrumb = parent if parent == root.breadcrumb == (crumb,) else (*parent, crumb)
            node = _Node(breadcrumb=breadcrumb, level=level)
            open_nodes[-1].children.append(node)
            open_nodes.append(node)
            nodes.append(node)
        ladder = _ROW_LADDER if element.kind in (TABLE, CODE) else _PROSE_LADDER
        for separator, piece in _pre_cut(text, ladder):
            blocks.append(_Block(open_nodes[-1], piece, element.page, ladder, separator))
    return root, nodes, blocks


def _pre_cut(text: str, ladder: tuple[re.Pattern[str], ...]) -> list[tuple[str, str]]:
    """A block too long to count whole (far over any model's limit) as runs of up to `_BLOCK_CHARS`,
    cut at its coarsest seam that divides it; packing puts back together whatever fits."""
    if len(text) <= _BLOCK_CHARS:
        return [(BLOCK_SEPARATOR, text)]
    for seam in ladder:
        pieces = _grouped(_split(text, seam), _BLOCK_CHARS)
        if len(pieces) > 1:
            return [(BLOCK_SEPARATOR, pieces[0][1]), *pieces[1:]]
    return [(BLOCK_SEPARATOR, text)]


def _cut(atom: _Atom, budget: int) -> tuple[list[tuple[str, str]], tuple[re.Pattern[str], ...]]:
    """The atom's (separator, text) pieces at its coarsest seam that divides it, and the seams left."""
    ladder = atom.ladder
    while ladder:
        run_chars = max(1, len(atom.text) * budget // (_PIECES_PER_BUDGET * max(atom.tokens, 1)))
        pieces, ladder = _grouped(_split(atom.text, ladder[0]), run_chars), ladder[1:]
        if len(pieces) > 1:
            return [(atom.separator, pieces[0][1]), *pieces[1:]], ladder
    # One word over the limit: cut it into pieces sized by its own tokens-per-character density.
    size = max(1, len(atom.text) * budget // atom.tokens)
    chunks = [atom.text[start : start + size] for start in range(0, len(atom.text), size)]
    return [(atom.separator, chunks[0]), *(("", chunk) for chunk in chunks[1:])], ()


def _split(text: str, seam: re.Pattern[str]) -> Iterator[tuple[str, str]]:
    """(separator, piece) pairs that join back into `text` exactly; runs of seams make one separator."""
    separator, start = "", 0
    for match in seam.finditer(text):
        if match.start() > start:
            yield separator, text[start : match.start()]
            separator = ""
        separator += match.group()
        start = match.end()
    if start < len(text):
        yield separator, text[start:]


def _grouped(pieces: Iterable[tuple[str, str]], max_chars: int) -> list[tuple[str, str]]:
    """Consecutive pieces joined into runs of up to `max_chars` (a piece longer stays alone).

    Without this, a block with a million seams (one 10 MB line of words) became a million atoms, each
    counted and packed: minutes and gigabytes. Runs of about 1/16 of the budget cost little packing.
    """
    runs: list[tuple[str, list[str]]] = []
    size = 0
    for separator, text in pieces:
        if runs and size + len(separator) + len(text) <= max_chars:
            runs[-1][1].extend((separator, text))
            size += len(separator) + len(text)
        else:
            runs.append((separator, [text]))
            size = len(text)
    return [(separator, "".join(parts)) for separator, parts in runs]


def _sum_bodies(node: _Node) -> int:
    node.body_tokens = sum(atom.tokens for atom in node.own) + sum(_sum_bodies(c) for c in node.children)
    return node.body_tokens


def _subtree_atoms(node: _Node) -> list[_Atom]:
    atoms = list(node.own)
    for child in node.children:
        atoms.extend(_subtree_atoms(child))
    return atoms


def _common_prefix(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    length = 0
    while length < min(len(first), len(second)) and first[length] == second[length]:
        length += 1
    return first[:length]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def embedded_text(breadcrumb: Sequence[str], text: str) -> str:
    """What the encoder reads (and BM25 indexes) of a section: its breadcrumb, then its text."""
    return CRUMB_SEPARATOR.join(breadcrumb) + BLOCK_SEPARATOR + text


def _shorter(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """The breadcrumb one step shorter, or None where nothing is left to cut: the headings between the
    title and the innermost one, which names the text, give way first, outermost first; then the
    longest part left loses half of its words (of its characters, where it is one word)."""
    if len(parts) > 3 or (len(parts) == 3 and parts[1] != ELISION):
        return (parts[0], ELISION, *parts[3 if parts[1] == ELISION else 2 :])
    cores = [part.removesuffix(ELISION).rstrip() for part in parts]
    longest = max(range(len(parts)), key=lambda i: len(cores[i]))
    core = cores[longest]
    if len(core) <= 1:
        return None
    words = core.split()
    cut = " ".join(words[: len(words) // 2]) + " " if len(words) > 1 else core[: len(core) // 2]
    return (*parts[:longest], cut + ELISION, *parts[longest + 1 :])
