"""A PDF text box's lines joined into the words a reader reads.

A PDF holds glyphs as they are set, so two artifacts of typesetting come out of pdfminer as text:

* Hyphenation. A justified page breaks words across lines: "exam-" ends one line and "ple" begins the
  next, and joined with a space they read "exam- ple", two non-words to BM25 and noise to the encoder.
  But a hyphen at a line end may also be a compound's own ("well-" + "known"). The document decides,
  as a reader would: the hyphen goes where the document spells the joined word elsewhere more often
  than the hyphenated one ("example"), and otherwise stays ("well-known", "exam-ple"), so no word is
  made up that the document does not have. A soft hyphen (U+00AD) only ever marks a break: it goes.
* Ligatures. A font's "fi" glyph maps to U+FB01 in many PDFs, which matches no query's "fi"; the
  Latin ligatures are spelled out.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

_LETTERS = r"[^\W\d_]+"
_WORD = re.compile(rf"{_LETTERS}(?:[-\u2010]{_LETTERS})*")
# A line ending in letters and a hyphen, hard (ASCII or U+2010) or soft, before any trailing space.
_BROKEN_END = re.compile(rf"({_LETTERS})([-\u2010\u00ad])\s*\Z")
_LEADING_LETTERS = re.compile(rf"\s*({_LETTERS})")
_SOFT_HYPHEN = "\u00ad"
# The Latin ligatures ("ﬀ" to "ﬆ"), spelled as Unicode's compatibility decomposition spells them.
_LIGATURES = str.maketrans({chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)})


def spelled_out(line: str) -> str:
    """A line with its ligatures spelled out."""
    return line.translate(_LIGATURES)


def vocabulary(boxes: Iterable[Sequence[str]]) -> Counter[str]:
    """How often the document spells each word (lower case) within a line, compounds whole."""
    return Counter(
        word.lower().replace("\u2010", "-")
        for lines in boxes
        for line in lines
        for word in _WORD.findall(line)
    )


def joined(lines: Sequence[str], words: Counter[str]) -> str:
    """The box's lines as one text: a space between lines, except where a word was broken across them."""
    text = ""
    for line in lines:
        text = _join(text, line, words) if text else line
    return text.replace(_SOFT_HYPHEN, "")


def _join(text: str, line: str, words: Counter[str]) -> str:
    broken, following = _BROKEN_END.search(text), _LEADING_LETTERS.match(line)
    if broken is None or following is None:
        return f"{text} {line}"
    left, hyphen, right = broken[1], broken[2], following[1]
    head, tail = text[: broken.start(2)], line[following.start(1) :]
    if hyphen == _SOFT_HYPHEN or words[(left + right).lower()] > words[f"{left}-{right}".lower()]:
        return head + tail
    return head + hyphen + tail
