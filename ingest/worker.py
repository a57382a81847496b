"""Start-up of a parsing process: the parsers load once, before the first document, without torch.

Parsing needs unstructured and spaCy, never torch or a GPU. spaCy's thinc imports torch and cupy
whenever it finds them, which costs every worker about 2 s of start-up here and, on a GPU machine, a
CUDA probe per process. Marking them absent (unless the parent's main module already brought torch
in) keeps workers light; loading the parsers in the initializer lets all workers warm up at once.
"""

from __future__ import annotations

import sys

_NOT_NEEDED_FOR_PARSING = ("torch", "cupy")


def start_parsing_process() -> None:
    """ProcessPoolExecutor initializer for parsing workers."""
    for name in _NOT_NEEDED_FOR_PARSING:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import fails"
    import ingest.prepare  # noqa: F401  # every parser, imported here rather than at the first document
    from ingest.parse.nlp import warm_up

    warm_up()
