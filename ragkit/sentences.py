"""Where a sentence ends: the one definition that sectioning and the query engine cut text at.

The whitespace after a full stop, question or exclamation mark, also when a closing quote or bracket
follows the mark. Callers add their own line-break seam; every cut is whitespace, so no word is split.
"""

SENTENCE_END = r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+"
