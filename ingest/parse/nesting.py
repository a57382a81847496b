"""HTML nested deeper than libxml2 reads: flattened below a depth, so the text at the bottom is kept.

libxml2, under lxml and so under unstructured's HTML partitioner, stops at 256 levels of nesting
("Excessive depth in document") and drops everything deeper; a page of 50,000 nested <div>s with its
text at the bottom came out as "no extractable text". Where libxml2 reports that, the document is
rewritten with the tags below `MAX_DEPTH` left out (their text, and the tags above, stay), and parsed
again. The rewrite reads the markup with the standard library's tokenizer, which has no depth limit
and does not recurse.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

from lxml import etree

MAX_DEPTH = 128
"""Levels kept; well inside libxml2's 256 and the recursion of unstructured's tree walk."""

# Elements that never hold content, and those a browser closes when another of their kind opens.
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_SELF_CLOSING_SIBLINGS = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option"])
_RAW_TEXT = frozenset({"script", "style"})
# Elements that run inside a line of text. Any other tag left out still ends a block, so it leaves a
# line break in its place: without one, "<p>First</p><p>Second</p>" below the limit read "FirstSecond".
_INLINE = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
    ]
)


def parse(text: str) -> tuple[etree._Element | None, bool]:
    """`text` as libxml2's HTML parser reads it (comments and processing instructions left out; None
    where it holds no element), and whether the parser gave up on it for its nesting depth."""
    parser = etree.HTMLParser(remove_comments=True, remove_pis=True)
    root = etree.fromstring(text, parser)
    return root, any("Excessive depth" in entry.message for entry in parser.error_log)


def flatten(text: str, max_depth: int = MAX_DEPTH) -> str:
    """`text` with every tag deeper than `max_depth` levels removed and all text kept."""
    flattener = _Flattener(max_depth)
    flattener.feed(text)
    flattener.close()
    return "".join(flattener.out)


class _Flattener(HTMLParser):
    def __init__(self, max_depth: int) -> None:
        super().__init__(convert_charrefs=True)
        self._max_depth = max_depth
        self._open: list[tuple[str, bool]] = []  # (tag, written)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.out.append(self.get_starttag_text() or "")
            return
        if tag in _SELF_CLOSING_SIBLINGS and self._open and self._open[-1][0] == tag:
            self.handle_endtag(tag)
        written = len(self._open) < self._max_depth
        if written:
            self.out.append(self.get_starttag_text() or "")
        elif tag not in _INLINE:
            self.out.append("\n")
        self._open.append((tag, written))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if len(self._open) < self._max_depth or tag in _VOID:
            self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                for name, written in reversed(self._open[index:]):
                    if written:
                        self.out.append(f"</{name}>")
                    elif name not in _INLINE:
                        self.out.append("\n")
                del self._open[index:]
                return
        # an end tag that closes nothing is dropped, as browsers do

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][0] in _RAW_TEXT and not self._open[-1][1]:
            return  # a script or style whose tag was left out must not turn into page text
        self.out.append(html.escape(data, quote=False))

    def handle_comment(self, data: str) -> None:
        pass  # unstructured drops comments anyway

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")
