"""Plain-dict payload filters, translated to Qdrant's filter model.

Callers (CLI flags, HTTP query strings, retriever kwargs) speak in plain dicts so that none of them needs
Qdrant's types, and so that another engine can take the same dicts later.
"""

from __future__ import annotations

from typing import Any

from qdrant_client.http import models

from ragkit.errors import InputError

RANGE_OPERATORS = ("gt", "gte", "lt", "lte")

_ALLOWED = (
    "a str, int or bool for equality, a non-empty list of str or of int for any-of, "
    f"or a dict of range operators ({', '.join(RANGE_OPERATORS)}) with numbers"
)


def to_qdrant_filter(filters: dict[str, Any] | None) -> models.Filter | None:
    """Turn `{"source": "a.pdf", "doc_id": ["x", "y"], "page_start": {"gte": 3}}` into a Qdrant filter.

    Every key must hold (AND). Values are checked here rather than by the engine, so that a typo in a
    filter is reported with the key at fault instead of as an engine-specific validation dump.
    """
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise InputError(f"filters must be a dict of payload key -> condition, got {type(filters).__name__}")
    return models.Filter(must=[_condition(key, value) for key, value in filters.items()])


def _condition(key: Any, value: Any) -> models.FieldCondition:
    if not isinstance(key, str) or not key:
        raise InputError(f"filter key {key!r} must be a non-empty string naming a payload field")
    if isinstance(value, (str, int)):  # bool is an int
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    if isinstance(value, list):
        return models.FieldCondition(key=key, match=models.MatchAny(any=_any_of(key, value)))
    if isinstance(value, dict):
        return models.FieldCondition(key=key, range=_range(key, value))
    raise InputError(f"filter {key!r}: unsupported value {value!r}; use {_ALLOWED}")


def _any_of(key: str, values: list[Any]) -> list[str] | list[int]:
    # Qdrant matches any-of lists of one type only, and has no any-of for booleans.
    is_int = [isinstance(v, int) and not isinstance(v, bool) for v in values]
    if values and (all(isinstance(v, str) for v in values) or all(is_int)):
        return values
    raise InputError(
        f"filter {key!r}: an any-of list must be non-empty and all str or all int; use {_ALLOWED}"
    )


def _range(key: str, ops: dict[str, Any]) -> models.Range:
    unknown = [op for op in ops if op not in RANGE_OPERATORS]
    if not ops or unknown:
        raise InputError(
            f"filter {key!r}: unknown range operator(s) {unknown or '(none given)'}; "
            f"allowed operators: {', '.join(RANGE_OPERATORS)}"
        )
    for op, bound in ops.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise InputError(f"filter {key!r}: range bound {op}={bound!r} must be a number")
    return models.Range(**ops)
