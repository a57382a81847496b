"""Sectioning: whole sections under their headings, cut only where the encoder's limit forces it.

Every count here comes from the real BERT-uncased tokenizer of all-MiniLM-L6-v2, the kind of counter
the pipeline passes in, so "fits" means what it will mean in production.
"""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from ingest.document import CODE, HEADING, LIST_ITEM, TABLE, TEXT, Element, ParsedDocument
from ingest.parse import parse
from ingest.sections import COUNT_BATCH_CHARS, ELISION, Section, build_sections
from ragkit.encoder.tokens import CountTokens
from ragkit.errors import InputError

# Each one token for BERT-uncased, so prose(n) costs about n tokens.
WORDS = [
    *("river", "stone", "cloud", "forest", "garden", "window", "paper", "letter", "market", "harbor"),
    *("bridge", "engine", "signal", "orange", "silver", "winter", "summer", "morning", "evening"),
    *("village", "castle", "island", "desert", "valley", "mountain", "ocean", "planet", "rocket"),
]


@pytest.fixture(scope="module")
def count(minilm_path: Path) -> CountTokens:
    tokenizer = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tokenizer.no_truncation()  # the stored tokenizer cuts at 128 tokens otherwise
    tokenizer.no_padding()
    return lambda texts: [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]


def prose(n_words: int, seed: int, sentence_words: int = 8) -> str:
    """Sentences of `sentence_words` words, each ending in a full stop."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(n_words)]
    sentences = [words[i : i + sentence_words] for i in range(0, n_words, sentence_words)]
    return " ".join(" ".join(sentence).capitalize() + "." for sentence in sentences)


def heading(level: int, text: str, page: int | None = None) -> Element:
    return Element(HEADING, text, level=level, page=page)


def para(text: str, page: int | None = None) -> Element:
    return Element(TEXT, text, page=page)


def document(*elements: Element, title: str = "Manual") -> ParsedDocument:
    return ParsedDocument(Path("manual.md"), title, list(elements))


def embed_tokens(count: CountTokens, breadcrumb: tuple[str, ...], *blocks: str) -> int:
    """What a section holding exactly these blocks would cost, to size limits from the real counter."""
    return count([" > ".join(breadcrumb) + "\n\n" + "\n\n".join(blocks)])[0]


def words_of(texts: list[str]) -> list[str]:
    return " ".join(texts).split()


def assert_nothing_lost(doc: ParsedDocument, sections: list[Section]) -> None:
    assert words_of([s.text for s in sections]) == words_of([e.text for e in doc.elements])


def assert_within(count: CountTokens, sections: list[Section], max_tokens: int) -> None:
    assert [s.tokens for s in sections] == count([s.embed_text for s in sections])
    assert max(s.tokens for s in sections) <= max_tokens


def install_guide() -> ParsedDocument:
    """Two chapters, the first nested three deep; every block about 45 tokens."""
    return document(
        heading(1, "Install"),
        para(prose(40, 1)),
        heading(2, "Linux"),
        para(prose(40, 2)),
        heading(3, "Debian"),
        para(prose(40, 3)),
        heading(2, "Windows"),
        para(prose(40, 4)),
        heading(1, "Usage"),
        para(prose(40, 5)),
    )


def mixed_document(chapters: int = 3) -> ParsedDocument:
    """Every kind of block, in sizes from a few tokens to far over any limit used here."""
    elements = [para("Draft for review.")]
    for c in range(chapters):
        elements += [heading(1, f"Chapter {c}", page=3 * c + 1), para(prose(30, c), page=3 * c + 1)]
        elements += [heading(2, f"Setup {c}", page=3 * c + 1), Element(LIST_ITEM, prose(6, c + 50))]
        elements += [Element(LIST_ITEM, prose(9, c + 60)), para(prose(700, c + 70), page=3 * c + 2)]
        elements += [Element(TABLE, "\n".join(f"row {r} {prose(12, r)}" for r in range(30)), page=3 * c + 2)]
        elements += [heading(3, f"Details {c}", page=3 * c + 3), para(" ".join(WORDS * 12))]
        elements += [Element(CODE, "def run():\n    return 1\n" * 40, page=3 * c + 3), heading(2, "Notes")]
    return document(*elements)


# -- structure ---------------------------------------------------------------------------------------


def test_a_heading_owns_everything_until_the_next_heading_of_the_same_or_a_higher_level(count):
    sections = build_sections(install_guide(), count_tokens=count, max_tokens=64, min_tokens=0)

    assert [s.breadcrumb for s in sections] == [
        ("Manual", "Install"),
        ("Manual", "Install", "Linux"),
        ("Manual", "Install", "Linux", "Debian"),
        ("Manual", "Install", "Windows"),
        ("Manual", "Usage"),
    ]
    blocks = [e.text for e in install_guide().elements]
    assert [s.text for s in sections] == [f"{blocks[i]}\n\n{blocks[i + 1]}" for i in range(0, 10, 2)]


def test_the_breadcrumb_is_prepended_to_the_embedded_text(count):
    sections = build_sections(install_guide(), count_tokens=count, max_tokens=64, min_tokens=0)

    assert sections[2].embed_text == "Manual > Install > Linux > Debian\n\n" + sections[2].text


def test_a_skipped_heading_level_nests_under_the_nearest_open_heading(count):
    doc = document(heading(1, "Install"), para(prose(40, 1)), heading(3, "Proxy"), para(prose(40, 2)))

    sections = build_sections(doc, count_tokens=count, max_tokens=64, min_tokens=0)

    assert [s.breadcrumb for s in sections] == [("Manual", "Install"), ("Manual", "Install", "Proxy")]


def test_a_parent_that_fits_stays_whole_with_its_subsections(count):
    doc = install_guide()
    install = [e.text for e in doc.elements[:8]]
    whole_install = embed_tokens(count, ("Manual", "Install"), *install)
    assert embed_tokens(count, ("Manual",), *[e.text for e in doc.elements]) > whole_install

    sections = build_sections(doc, count_tokens=count, max_tokens=whole_install, min_tokens=0)

    assert [s.breadcrumb for s in sections] == [("Manual", "Install"), ("Manual", "Usage")]
    assert sections[0].text == "\n\n".join(install)


def test_a_document_that_fits_is_one_section_under_its_title(count):
    sections = build_sections(install_guide(), count_tokens=count, max_tokens=8192)

    assert [s.breadcrumb for s in sections] == [("Manual",)]
    assert_nothing_lost(install_guide(), sections)


def test_content_before_the_first_heading_has_only_the_title_as_breadcrumb(count):
    preface = prose(40, 9)
    doc = document(para(preface), *install_guide().elements)

    sections = build_sections(doc, count_tokens=count, max_tokens=64, min_tokens=0)

    assert (sections[0].breadcrumb, sections[0].text) == (("Manual",), preface)
    assert sections[1].breadcrumb == ("Manual", "Install")


def test_a_document_without_headings_is_sectioned_under_its_title(count):
    doc = document(*(para(prose(40, seed)) for seed in range(4)))

    sections = build_sections(doc, count_tokens=count, max_tokens=64)

    assert {s.breadcrumb for s in sections} == {("Manual",)}
    assert_nothing_lost(doc, sections)


def test_an_empty_or_blank_document_has_no_sections(count):
    assert build_sections(document(), count_tokens=count, max_tokens=64) == []
    assert build_sections(document(para("  \n ")), count_tokens=count, max_tokens=64) == []


# -- pages -------------------------------------------------------------------------------------------


def test_a_section_spans_the_pages_of_its_blocks(count):
    doc = document(
        heading(1, "Install", page=1),
        para(prose(25, 1), page=1),
        para(prose(25, 2), page=2),
        heading(1, "Usage", page=3),
        para(prose(25, 3), page=3),
        para(prose(25, 4), page=5),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=100)

    assert [(s.breadcrumb[-1], s.page_start, s.page_end) for s in sections] == [
        ("Install", 1, 2),
        ("Usage", 3, 5),
    ]


def test_each_part_of_a_split_section_spans_only_its_own_pages(count):
    doc = document(heading(1, "Install", page=1), *(para(prose(40, p), page=p) for p in range(1, 5)))

    sections = build_sections(doc, count_tokens=count, max_tokens=64)

    assert [(s.page_start, s.page_end) for s in sections] == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_formats_without_pages_give_no_page_range(count):
    sections = build_sections(install_guide(), count_tokens=count, max_tokens=64)

    assert {(s.page_start, s.page_end) for s in sections} == {(None, None)}


# -- the limit, and where a section is cut -----------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [64, 128, 256])
def test_no_section_exceeds_max_tokens_counted_exactly_on_its_embed_text(count, max_tokens):
    sections = build_sections(mixed_document(), count_tokens=count, max_tokens=max_tokens)

    assert_within(count, sections, max_tokens)


def test_an_oversized_section_splits_at_its_child_headings_first(count):
    doc = document(
        heading(1, "Install"),
        heading(2, "Linux"),
        para(prose(60, 1)),
        heading(2, "Windows"),
        para(prose(60, 2)),
        heading(2, "Mac"),
        para(prose(60, 3)),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=128, min_tokens=0)

    texts = [e.text for e in doc.elements]
    assert [s.text for s in sections] == ["Install", *(f"{texts[i]}\n\n{texts[i + 1]}" for i in (1, 3, 5))]


def test_then_at_block_boundaries(count):
    paragraphs = [prose(30, seed) for seed in range(6)]
    doc = document(heading(1, "Install"), *(para(p) for p in paragraphs))

    sections = build_sections(doc, count_tokens=count, max_tokens=100)

    blocks = [block for s in sections for block in s.text.split("\n\n")]
    assert blocks == ["Install", *paragraphs]
    assert len(sections) > 1


def test_then_at_sentence_boundaries(count):
    paragraph = prose(240, 1)
    sentences = re.findall(r"[^.]+\.", paragraph)

    sections = build_sections(document(para(paragraph)), count_tokens=count, max_tokens=64)

    assert len(sections) > 1
    assert [re.findall(r"[^.]+\.", s.text) for s in sections] != [sentences]
    assert [sentence.strip() for s in sections for sentence in re.findall(r"[^.]+\.", s.text)] == [
        sentence.strip() for sentence in sentences
    ]
    assert all(s.text.endswith(".") for s in sections)


def test_then_at_word_boundaries_never_inside_a_word(count):
    words = " ".join(random.Random(3).choice(WORDS) + "ing" for _ in range(300))  # no sentence ends

    sections = build_sections(document(para(words)), count_tokens=count, max_tokens=64)

    assert len(sections) > 1
    assert [s.text.split() for s in sections if s.text.split()[0] not in WORDS]
    assert words_of([s.text for s in sections]) == words.split()
    assert_within(count, sections, 64)


def test_a_word_longer_than_the_limit_is_split_into_token_sized_pieces_not_dropped(count):
    blob = base64.b64encode(random.Random(4).randbytes(6000)).decode()
    doc = document(heading(1, "Attachment"), para(f"Before the blob. {blob} After the blob."))

    sections = build_sections(doc, count_tokens=count, max_tokens=128)

    assert len(sections) > 10
    assert_within(count, sections, 128)
    assert sections[0].text.startswith("Attachment\n\nBefore the blob.")
    assert sections[-1].text.endswith(" After the blob.")
    assert "".join(s.text for s in sections).replace(" ", "").replace("\n", "") == "".join(
        f"Attachment Before the blob. {blob} After the blob.".split()
    )


# -- tiny sections -----------------------------------------------------------------------------------


def test_a_heading_only_chapter_merges_with_its_first_subsection(count):
    doc = document(heading(1, "Install"), heading(2, "Linux"), para(prose(40, 1)), heading(2, "Mac"))
    doc.elements.append(para(prose(40, 2)))

    sections = build_sections(doc, count_tokens=count, max_tokens=64)

    assert [(s.breadcrumb, s.text.split("\n\n")[:2]) for s in sections] == [
        (("Manual", "Install"), ["Install", "Linux"]),
        (("Manual", "Install", "Mac"), ["Mac", doc.elements[-1].text]),
    ]


def test_a_tiny_section_merges_with_its_next_sibling_rather_than_its_parent(count):
    doc = document(
        heading(1, "Install"),
        para(prose(25, 1)),
        heading(2, "Linux"),
        para("Use the package."),
        heading(2, "Windows"),
        para(prose(25, 2)),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=64, min_tokens=20)

    assert [s.breadcrumb for s in sections] == [("Manual", "Install"), ("Manual", "Install")]
    assert sections[1].text == "Linux\n\nUse the package.\n\nWindows\n\n" + doc.elements[-1].text


def test_a_tiny_last_section_merges_with_its_previous_sibling(count):
    doc = document(
        heading(1, "Install"),
        para(prose(50, 1)),
        heading(2, "Linux"),
        para(prose(30, 2)),
        heading(2, "Windows"),
        para("Unsupported."),
        heading(1, "Usage"),
        para(prose(50, 3)),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=64)

    assert [s.breadcrumb for s in sections] == [
        ("Manual", "Install"),
        ("Manual", "Install"),
        ("Manual", "Usage"),
    ]
    assert sections[1].text.endswith("Windows\n\nUnsupported.")


def test_tiny_sections_stay_apart_when_together_they_would_exceed_max_tokens(count):
    chapter, body = "Installing the whole software", prose(52, 1)
    doc = document(heading(1, chapter), heading(2, "Linux"), para(body), heading(1, "Usage"), para(body))
    together = embed_tokens(count, ("Manual", chapter), chapter, "Linux", body)
    assert embed_tokens(count, ("Manual", chapter, "Linux"), "Linux", body) < together - 1

    sections = build_sections(doc, count_tokens=count, max_tokens=together - 1, min_tokens=together)

    assert [s.text for s in sections][:2] == [chapter, "Linux\n\n" + body]


def test_a_tiny_section_never_merges_into_the_next_chapter(count):
    doc = document(
        heading(1, "Install"),
        para(prose(50, 1)),
        heading(2, "Linux"),
        para("Use the package."),
        heading(1, "Usage"),
        para(prose(30, 2)),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=64)

    assert [s.breadcrumb for s in sections] == [
        ("Manual", "Install"),
        ("Manual", "Install", "Linux"),
        ("Manual", "Usage"),
    ]


# -- tables ------------------------------------------------------------------------------------------


def table(rows: int, seed: int) -> Element:
    """Rows with full stops inside their cells: a sentence end in a table is no place to cut."""
    return Element(TABLE, "\n".join(f"{r} | {prose(6, seed + r)} | {prose(3, r)} | ok" for r in range(rows)))


def test_a_table_that_fits_on_its_own_is_never_split(count):
    grid = table(8, 1)
    doc = document(heading(1, "Results"), para(prose(30, 1)), Element(TABLE, grid.text), para(prose(30, 2)))
    alone = embed_tokens(count, ("Manual", "Results"), grid.text)

    sections = build_sections(doc, count_tokens=count, max_tokens=alone + 10)

    assert len(sections) > 1
    assert [grid.text in s.text for s in sections].count(True) == 1


def test_a_table_over_the_limit_is_split_between_rows(count):
    grid = table(40, 2)
    rows = grid.text.split("\n")

    sections = build_sections(document(grid), count_tokens=count, max_tokens=64)

    assert len(sections) > 1
    assert [row for s in sections for row in s.text.split("\n")] == rows


# -- guarantees --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [64, 256, 8192])
def test_no_text_is_lost_every_word_appears_once_and_in_order(count, max_tokens):
    doc = mixed_document()

    sections = build_sections(doc, count_tokens=count, max_tokens=max_tokens)

    assert_nothing_lost(doc, sections)


def test_the_same_document_gives_the_same_sections(count):
    first = build_sections(mixed_document(), count_tokens=count, max_tokens=128)
    second = build_sections(mixed_document(), count_tokens=count, max_tokens=128)

    assert first == second


def many_small_steps() -> ParsedDocument:
    steps = [(heading(2, f"Step {i}"), para(prose(5 + i, i))) for i in range(12)]
    return document(heading(1, "Install"), *(element for step in steps for element in step))


@pytest.mark.parametrize("make_doc", [mixed_document, install_guide, many_small_steps])
@pytest.mark.parametrize("max_tokens", [44, 64, 200, 1000])
def test_a_counter_whose_counts_do_not_add_up_still_never_sees_a_section_over_the_limit(
    count, make_doc, max_tokens
):
    """A tokenizer that encodes line breaks makes a section dearer than its blocks: whole subtrees,
    merges and packed parts planned from block counts overflow, and the exact check must catch them."""

    def newline_aware(texts):
        return [n + text.count("\n") for n, text in zip(count(texts), texts, strict=True)]

    doc = make_doc()

    sections = build_sections(doc, count_tokens=newline_aware, max_tokens=max_tokens)

    assert_within(newline_aware, sections, max_tokens)
    assert_nothing_lost(doc, sections)


def test_the_counter_is_called_in_batches_and_each_block_is_counted_once(count):
    calls: list[list[str]] = []

    def recording(texts):
        calls.append(list(texts))
        return count(texts)

    doc = mixed_document(chapters=250)  # 3,000 blocks
    sections = build_sections(doc, count_tokens=recording, max_tokens=8192)

    blocks = len(doc.elements)
    breadcrumbs = 1 + sum(e.kind == HEADING for e in doc.elements)  # the title's, then one per heading
    special_tokens = 1  # counting "" tells how many tokens the model adds to every text
    assert sum(map(len, calls)) == blocks + breadcrumbs + special_tokens + len(sections)
    # Batches are big (two phases, each as few calls as the character bound allows), and bounded in
    # characters, so the tokenizer's memory is too.
    assert len(calls) <= 2 + 2 * sum(len(text) for texts in calls for text in texts) // COUNT_BATCH_CHARS
    assert all(sum(map(len, texts)) <= COUNT_BATCH_CHARS for texts in calls if len(texts) > 1)


def test_a_block_of_millions_of_words_is_sectioned_with_few_counts(count):
    """One 10 MB line without sentence ends once made two million atoms (minutes, gigabytes)."""
    words = " ".join(f"word{i % 1000}" for i in range(300_000))
    calls: list[int] = []

    def recording(texts):
        calls.append(len(texts))
        return count(texts)

    doc = document(heading(1, "Log"), para(words))
    sections = build_sections(doc, count_tokens=recording, max_tokens=256)

    assert_within(count, sections, 256)
    assert_nothing_lost(doc, sections)
    assert sum(calls) < 20 * len(sections)  # runs of words, not single words, are counted


def long_heading_manual(tmp_path: Path, heading_words: int) -> ParsedDocument:
    """A Markdown manual, parsed for real, whose second heading runs to `heading_words` words."""
    long_heading = prose(heading_words, 1, sentence_words=heading_words).removesuffix(".")
    path = tmp_path / "manual.md"
    path.write_text(f"# Install\n\n{prose(120, 2)}\n\n## {long_heading}\n\n{prose(30, 3)}\n")
    return parse(path)


def test_a_breadcrumb_over_the_limit_is_shortened_instead_of_failing_the_document(count, tmp_path):
    doc = long_heading_manual(tmp_path, 300)  # over MiniLM's 256 tokens by itself

    sections = build_sections(doc, count_tokens=count, max_tokens=256)

    assert_within(count, sections, 256)
    assert_nothing_lost(doc, sections)  # the heading's words too, cut as any block over the limit is
    assert {s.breadcrumb_shortened for s in sections} == {True, False}
    assert max(count([" > ".join(s.breadcrumb) for s in sections])) <= 128


def test_a_breadcrumb_over_half_the_limit_is_shortened_and_its_heading_kept_whole_in_the_text(
    count, tmp_path
):
    """Under its full breadcrumb a 130-word heading left too little room to stay whole."""
    doc = long_heading_manual(tmp_path, 130)
    long_heading = doc.elements[2].text

    sections = build_sections(doc, count_tokens=count, max_tokens=256)

    assert_within(count, sections, 256)
    assert_nothing_lost(doc, sections)
    assert any(s.text.startswith(long_heading + "\n\n") for s in sections)
    assert [s.breadcrumb for s in sections if not s.breadcrumb_shortened] == [("Install",)]
    shortened = {s.breadcrumb for s in sections if s.breadcrumb_shortened}
    assert len(shortened) == 1
    title, shown = shortened.pop()
    assert title == "Install" and shown.endswith(ELISION)
    assert long_heading.startswith(shown.removesuffix(ELISION).rstrip())
    assert count([f"{title} > {shown}"])[0] <= 128


def test_a_long_breadcrumb_loses_its_outer_headings_before_any_words_of_the_innermost(count):
    chapter, section = prose(90, 1, sentence_words=90), prose(40, 2, sentence_words=40)
    doc = document(
        heading(1, chapter),
        para(prose(120, 3)),
        heading(2, section),
        heading(3, "Debian"),
        para(prose(180, 4)),
    )

    sections = build_sections(doc, count_tokens=count, max_tokens=256, min_tokens=0)

    assert list(dict.fromkeys((s.breadcrumb, s.breadcrumb_shortened) for s in sections)) == [
        (("Manual", chapter), False),
        (("Manual", ELISION, section), True),
        (("Manual", ELISION, section, "Debian"), True),
    ]
    assert_nothing_lost(doc, sections)


def test_a_limit_that_leaves_no_room_even_for_a_shortened_breadcrumb_is_an_input_error(count):
    doc = document(heading(1, prose(40, 1)), para("Body."))

    with pytest.raises(InputError, match="breadcrumb"):
        build_sections(doc, count_tokens=count, max_tokens=3)


def test_max_tokens_must_be_positive(count):
    with pytest.raises(InputError):
        build_sections(install_guide(), count_tokens=count, max_tokens=0)
