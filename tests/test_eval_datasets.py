"""bench/eval_datasets.py on tiny pages shaped like the PostgreSQL, Python and Git manuals' HTML: the Markdown
ragkit's evaluation reads, queries taken from the manuals' own summaries and removed from the pages,
and BEIR folders that `load_beir` accepts, byte for byte the same on every build."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from bench.eval_datasets import (
    RetrievalSet,
    git_set,
    markdown,
    perl_set,
    postgres_set,
    python_set,
    write_beir,
)
from ingest.document import CODE, HEADING, TEXT
from ragkit.encoder.checkpoint import load_tokenizer
from ragkit.encoder.tokens import TokenCounter
from ragkit.evaluation import load_beir
from ragkit.evaluation.dataset import Dataset, Document
from ragkit.evaluation.markdown import parsed_document


@pytest.fixture(scope="module")
def count_tokens(minilm_path):
    return TokenCounter(load_tokenizer(minilm_path))


def page(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body>"
        '<div class="navheader"><a href="index.html">Prev</a> Up Next</div>'
        f"{body}"
        '<div class="navfooter"><a href="index.html">Home</a></div></body></html>'
    )


def sections(*names: str, words: int = 120) -> str:
    """Sections long enough (words x sections) for the page to count as a long document."""
    return "".join(
        f'<div class="refsect1"><h2>{name}</h2><p>{" ".join([name.lower()] * words)} here.</p></div>'
        for name in names
    )


def refentry(name: str, purpose: str, body: str = "") -> str:
    return page(
        name,
        f'<div class="refentry"><div class="refnamediv"><h2>{name}</h2><p>{name} — {purpose}</p></div>'
        f"{body or sections('Description', 'Notes', 'Examples')}</div>",
    )


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, html in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(html, encoding="utf-8")
    return folder


def as_beir(built: RetrievalSet, folder: Path) -> Dataset:
    """The set written as a BEIR folder and read back the way `ragkit eval` reads it."""
    write_beir(built, folder)
    return load_beir(folder)


def assert_same_files(rebuilt: RetrievalSet, first: Path, again: Path) -> None:
    """A second build from the same pages writes the same bytes."""
    write_beir(rebuilt, again)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (again / name).read_bytes() == (first / name).read_bytes()


def test_a_page_becomes_markdown_that_ragkit_reads_as_headings_paragraphs_and_code():
    html = page(
        "CREATE TABLE",
        '<div class="toc"><a href="x.html">Contents</a></div>'
        '<h1>CREATE TABLE<a class="headerlink" href="#a">¶</a></h1>'
        "<p>Defines a <code>new</code>\n   table.</p>"
        '<div class="note"><h3>Note</h3><p>Names are case-folded.</p></div>'
        "<h2>Synopsis</h2><pre>CREATE TABLE t (\n  # not a heading\n  id int\n);</pre>"
        "<table><tr><th>Option</th><th>Meaning</th></tr><tr><td>TEMP</td><td><p>dropped at</p><p>session end</p></td></tr>"
        "<tr><td>upper('a')</td><td>→ <pre>A</pre></td></tr></table>"
        "<p># starts like a heading</p>",
    )
    text = markdown(BeautifulSoup(html, "lxml").body)

    assert text == (
        "# CREATE TABLE\n\nDefines a new table.\n\nNote\n\nNames are case-folded.\n\n## Synopsis\n\n"
        "```\nCREATE TABLE t (\n  # not a heading\n  id int\n);\n```\n\n"
        "Option | Meaning\nTEMP | dropped at session end\nupper('a') | → A\n\n\\# starts like a heading"
    )
    elements = parsed_document(Document("x", "CREATE TABLE", text)).elements
    assert [(e.kind, e.level) for e in elements if e.kind == HEADING] == [(HEADING, 1), (HEADING, 2)]
    assert [e.kind for e in elements if e.kind != HEADING] == [TEXT, TEXT, TEXT, CODE, TEXT, TEXT]


def test_postgres_queries_are_purpose_lines_and_glossary_definitions_removed_from_their_pages(
    tmp_path, count_tokens
):
    html = write(
        tmp_path / "html",
        {
            "sql-createtable.html": refentry("CREATE TABLE", "define a new table"),
            "sql-abort.html": refentry("ABORT", "abort the current transaction"),
            "sql-rollback.html": refentry("ROLLBACK", "abort the current transaction"),
            "sql-listen.html": refentry("LISTEN", "listen for a notification", sections("Description")),
            "sql-notify.html": refentry(
                "NOTIFY",
                "generate a notification",
                sections("Description", "Notes", "Examples") + "<p>NOTIFY can generate a notification.</p>",
            ),
            "ddl-basics.html": page("Table Basics", sections("Tables", "Columns", "Defaults")),
            "sql-commands.html": page(
                "SQL Commands", '<div class="toc"><a href="sql-abort.html">ABORT</a></div>'
            ),
            "glossary.html": page(
                "Glossary",
                '<dl><dt id="GLOSSARY-TABLE">Table</dt><dd><p>A collection of <a href="#GLOSSARY-TUPLE">'
                'tuples</a> having a common data structure.</p><p>For more information, see <a href="'
                'ddl-basics.html">Chapter 5</a>.</p></dd>'
                '<dt id="GLOSSARY-DATA-AREA">Data area</dt><dd><p>See <a href="#GLOSSARY-DIR">Data directory</a>.</p></dd></dl>',
            ),
        },
    )
    built = postgres_set(html, count_tokens)
    dataset = as_beir(built, tmp_path / "set")

    assert dataset.queries == {
        "glossary-table": "A collection of tuples having a common data structure.",
        "ref-sql-abort": "abort the current transaction",
        "ref-sql-createtable": "define a new table",
    }
    assert dataset.qrels == {
        "glossary-table": {"ddl-basics": 1},
        "ref-sql-abort": {"sql-abort": 1, "sql-rollback": 1},
        "ref-sql-createtable": {"sql-createtable": 1},
    }
    # LISTEN is too short to be a long document; NOTIFY keeps its purpose in its own text, so it is
    # judged by nothing and stays as a distractor; the table of contents and the glossary are no documents.
    assert set(dataset.documents) == {
        "ddl-basics",
        "sql-abort",
        "sql-createtable",
        "sql-notify",
        "sql-rollback",
    }
    assert built.dropped["short"] == 0
    assert built.dropped["no eligible relevant page"] == 1
    assert built.dropped["found in its relevant page"] == 1
    create = dataset.documents["sql-createtable"]
    assert create.title == "CREATE TABLE"
    assert create.text.startswith("## CREATE TABLE\n\n## Description\n\ndescription description")
    assert "define a new table" not in create.text and "Prev" not in create.text

    assert_same_files(postgres_set(html, count_tokens), tmp_path / "set", tmp_path / "again")


def test_python_queries_are_module_synopses_and_the_heading_loses_its_description(tmp_path, count_tokens):
    def module_page(name: str, description: str) -> str:
        return page(
            f"{name} — {description} — Python 3.11.2 documentation",
            f'<div class="body" role="main"><section><h1><a href="#module-{name}"><code>{name}</code></a>'
            f' — {description}<a class="headerlink" href="#">¶</a></h1>'
            f"{sections('Basic Usage', 'Encoders and Decoders')}</section></div>",
        )

    def index_row(name: str, synopsis: str) -> str:
        return (
            f'<tr><td></td><td><a href="library/{name}.html#module-{name}"><code>{name}</code></a></td>'
            f"<td><em>{synopsis}</em></td></tr>"
        )

    html = write(
        tmp_path / "html",
        {
            "library/json.html": module_page("json", "JSON encoder and decoder"),
            "library/csv.html": module_page("csv", "CSV File Reading and Writing"),
            "library/glob.html": module_page("glob", "Unix style pathname pattern expansion"),
            "howto/logging.html": page("Logging HOWTO", sections("Basic Logging", "Advanced Logging")),
            "py-modindex.html": "<table>"
            + index_row("json", "Encode and decode the ``JSON`` format.")
            + index_row("csv", "CSV File Reading and Writing.")
            + index_row("glob", "Pathname expansion.")
            + "</table>",
        },
    )
    built = python_set(html, count_tokens)
    dataset = as_beir(built, tmp_path / "set")

    # csv's synopsis repeats its heading's description, which is gone from the page; glob's is too short.
    assert dataset.queries == {
        "module-csv": "CSV File Reading and Writing.",
        "module-json": "Encode and decode the JSON format.",
    }
    assert dataset.qrels == {"module-csv": {"library/csv": 1}, "module-json": {"library/json": 1}}
    assert built.dropped["short"] == 1
    # Distractors take up to 2/3 of the judged pages' tokens: one page of two here, the first in spread order.
    assert set(dataset.documents) == {"howto/logging", "library/csv", "library/json"}
    json_page = dataset.documents["library/json"]
    assert json_page.title == "json"
    assert json_page.text.startswith("# json\n\n## Basic Usage\n\nbasic usage basic usage")
    assert "encoder and decoder" not in json_page.text and "¶" not in json_page.text
    assert dataset.documents["howto/logging"].title == "Logging HOWTO"


def test_git_queries_are_manual_page_summaries_and_the_name_section_leaves_the_page(tmp_path, count_tokens):
    def man_page(name: str, summary: str, body: str = "") -> str:
        return (
            f"<html><head><title>{name}(1)</title></head><body>"
            f'<div id="header"><h1>{name}(1) Manual Page</h1><h2>NAME</h2><div class="sectionbody">'
            f"<p>{name} -\n   {summary}\n</p></div></div>"
            f'<div id="content">{body or sections("SYNOPSIS", "DESCRIPTION", "OPTIONS")}</div>'
            '<div id="footer"><div id="footer-text">Last updated 2024-05-31 00:35:55 UTC</div></div>'
            "</body></html>"
        )

    html = write(
        tmp_path / "html",
        {
            "git-add.html": man_page("git-add", "Add file contents to the index"),
            "git-rm.html": man_page("git-rm", "Remove files from the working tree and from the index"),
            "git-init.html": man_page("git-init", "Create an empty repository"),
            "git-mv.html": man_page(
                "git-mv",
                "Move or rename a file",
                sections("SYNOPSIS", "DESCRIPTION", "OPTIONS") + "<p>Use it to move or rename a file.</p>",
            ),
            "git-gc.html": man_page("git-gc", "Cleanup"),
            "git.html": man_page("git", "the stupid content tracker", sections("COMMANDS", "OPTIONS")),
            "howto/maintain-git.html": page(
                "How to maintain Git", sections("Activities", "Branches", "Tools", words=100)
            ),
        },
    )
    (html / "index.html").symlink_to("git.html")
    built = git_set(html, count_tokens)
    dataset = as_beir(built, tmp_path / "set")

    # git-mv keeps its summary in its own text and git-gc's is too short: both are judged by nothing.
    assert dataset.queries == {
        "man-git-add": "Add file contents to the index",
        "man-git-init": "Create an empty repository",
        "man-git-rm": "Remove files from the working tree and from the index",
    }
    assert dataset.qrels == {
        "man-git-add": {"git-add": 1},
        "man-git-init": {"git-init": 1},
        "man-git-rm": {"git-rm": 1},
    }
    assert built.dropped["short"] == 1
    assert built.dropped["found in its relevant page"] == 1
    # git(1), which lists every command's summary, is no document (nor is index.html, a link to it).
    # Distractors take up to 2/3 of the judged pages' tokens: git-gc and the shorter how-to fit, git-mv
    # no longer does.
    assert set(dataset.documents) == {"git-add", "git-gc", "git-init", "git-rm", "howto/maintain-git"}
    assert dataset.documents["howto/maintain-git"].title == "How to maintain Git"
    add = dataset.documents["git-add"]
    assert add.title == "git-add(1)"
    assert add.text.startswith("# git-add(1) Manual Page\n\n## SYNOPSIS\n\nsynopsis synopsis")
    assert "NAME" not in add.text and "Add file contents" not in add.text
    assert "Last updated" not in add.text

    assert_same_files(git_set(html, count_tokens), tmp_path / "set", tmp_path / "again")


def test_perl_queries_are_module_summaries_from_pod_and_the_name_section_leaves_the_page(
    tmp_path, count_tokens
):
    def pod(name: str, summary: str | None, *heads: str, words: int = 120, extra: str = "") -> str:
        name_section = f"=head1 NAME\n\n{name} - {summary}\n\n" if summary else ""
        body = "".join(f"=head1 {h}\n\n{' '.join([h.lower()] * words)} here.\n\n" for h in heads)
        return f"package {name};\n1;\n__END__\n\n{name_section}{body}{extra}=cut\n"

    usual = ("SYNOPSIS", "DESCRIPTION", "FUNCTIONS")
    core, arch = tmp_path / "share", tmp_path / "arch"
    write(
        core,
        {
            "List/Util.pm": pod("List::Util", "A selection of general-utility list subroutines", *usual),
            "Text/Wrap.pm": pod("Text::Wrap", "line wrapping to form simple paragraphs", *usual),
            # Documented in a .pod beside the code, as Pod::Simple is.
            "Pod/Simple.pm": "package Pod::Simple;\n\n=head1 NAME\n\nPod::Simple - internals\n\n=cut\n1;\n",
            "Pod/Simple.pod": pod("Pod::Simple", "framework for parsing Pod", *usual),
            "Carp.pm": pod(
                "Carp",
                "alternative warn and die for modules",
                *usual,
                extra="Use the alternative warn and die for modules.\n\n",
            ),
            "Env.pm": pod("Env", "env", *usual),
            "NoPod.pm": "package NoPod;\n1;\n",
            "Guide.pod": pod("Guide", None, "INTRODUCTION", "USAGE", words=100),
        },
    )
    write(arch, {"List/Util.pm": pod("List::Util", "the architecture's copy, never read", *usual)})
    built = perl_set([core, arch], count_tokens)
    dataset = as_beir(built, tmp_path / "set")

    # Carp keeps its summary in its own text and Env's is too short: both are judged by nothing.
    assert dataset.queries == {
        "module-List::Util": "A selection of general-utility list subroutines",
        "module-Pod::Simple": "framework for parsing Pod",
        "module-Text::Wrap": "line wrapping to form simple paragraphs",
    }
    assert dataset.qrels == {q: {q.removeprefix("module-"): 1} for q in dataset.queries}
    assert built.dropped["short"] == 1
    assert built.dropped["found in its relevant page"] == 1
    # A module without POD is no document; distractors take up to 2/3 of the judged pages' tokens.
    assert "NoPod" not in dataset.documents
    assert {"List::Util", "Pod::Simple", "Text::Wrap"} < set(dataset.documents)
    util = dataset.documents["List::Util"]
    assert util.title == "List::Util"
    assert util.text.startswith("# SYNOPSIS\n\nsynopsis synopsis")
    assert "NAME" not in util.text and "general-utility" not in util.text
    assert "architecture" not in util.text

    assert_same_files(perl_set([core, arch], count_tokens), tmp_path / "set", tmp_path / "again")
