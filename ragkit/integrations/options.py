"""Unknown adapter options are errors, never ignored.

Both frameworks would drop them silently (pydantic's default `extra="ignore"`, LlamaIndex's `**kwargs`), so
`top_k=10` for `k=10` returns five documents and a misspelled `filter=` returns every tenant's sections.
Each adapter names the options it accepts; anything else is refused here, with the likely intended one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ragkit.errors import InputError

# Other libraries' spellings of ragkit's options, for the hint in the error.
SPELLINGS = {
    "top_k": "top_k",
    "k": "top_k",
    "similarity_top_k": "top_k",
    "filter": "filters",
    "filters": "filters",
    "search_kwargs": "search_kwargs",
}


def refuse_unknown(where: str, given: Iterable[str], accepted: dict[str, str]) -> None:
    """Raise InputError naming each option of `given` not in `accepted` and the accepted ones.

    `accepted` maps this adapter's option names to what they mean to ragkit ("top_k", "filters"), so a
    known foreign spelling is answered with this adapter's own.
    """
    unknown = [name for name in given if name not in accepted]
    if not unknown:
        return
    own = {meaning: name for name, meaning in accepted.items()}
    hints = [_hint(name, own) for name in unknown]
    raise InputError(
        f"{where} got unknown option{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(map(repr, unknown))}{''.join(hints)}; it accepts {', '.join(accepted)}"
    )


def _hint(name: str, own: dict[str, Any]) -> str:
    meaning = SPELLINGS.get(name)
    if meaning == "search_kwargs":
        return " (pass search options directly, not inside search_kwargs)"
    if meaning in own:
        return f" (did you mean {own[meaning]}?)"
    return ""
