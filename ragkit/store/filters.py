"""Plain-dict payload filters, checked once and handed to either engine as plain conditions.

Callers (CLI flags, HTTP query strings, retriever kwargs) speak in plain dicts so that none of them needs
an engine's types; each engine translates the checked conditions into its own filter model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ragkit.errors import InputError

RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
# Qdrant keeps payload integers in 64 bits and refuses a larger one in a filter as a failed request.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_ALLOWED = (
    "a str, int or bool for equality, a non-empty list of str or of int for any-of, "
    f"or a dict of range operators ({', '.join(RANGE_OPERATORS)}) with numbers"
)


@dataclass(frozen=True)
class Equals:
    key: str
    value: str | int | bool


@dataclass(frozen=True)
class AnyOf:
    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class Between:
    key: str
    bounds: dict[str, float]  # a subset of RANGE_OPERATORS


Condition = Equals | AnyOf | Between


def parse_filters(filters: dict[str, Any] | None) -> tuple[Condition, ...]:
    """`{"source": "a.pdf", "doc_id": ["x", "y"], "page_start": {"gte": 3}}` as conditions that must all hold.

    Values are checked here rather than by the engine, so that a typo in a filter is reported with the key
    at fault instead of as an engine-specific validation dump. No filters give no conditions.
    """
    if not filters:
        return ()
    if not isinstance(filters, dict):
        raise InputError(f"filters must be a dict of payload key -> condition, got {type(filters).__name__}")
    return tuple(_condition(key, value) for key, value in filters.items())


def _condition(key: Any, value: Any) -> Condition:
    if not isinstance(key, str) or not key:
        raise InputError(f"filter key {key!r} must be a non-empty string naming a payload field")
    if isinstance(value, (str, int)):  # bool is an int
        return Equals(key, _int64(key, value) if isinstance(value, int) else value)
    if isinstance(value, list):
        return AnyOf(key, _any_of(key, value))
    if isinstance(value, dict):
        return Between(key, _range(key, value))
    raise InputError(f"filter {key!r}: unsupported value {value!r}; use {_ALLOWED}")


def _any_of(key: str, values: list[Any]) -> tuple[str, ...] | tuple[int, ...]:
    # Qdrant matches any-of lists of one type only, and has no any-of for booleans.
    is_int = [isinstance(v, int) and not isinstance(v, bool) for v in values]
    if values and all(isinstance(v, str) for v in values):
        return tuple(values)
    if values and all(is_int):
        return tuple(_int64(key, v) for v in values)
    raise InputError(
        f"filter {key!r}: an any-of list must be non-empty and all str or all int; use {_ALLOWED}"
    )


def _int64(key: str, value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InputError(
            f"filter {key!r}: the integer {value} is outside the 64-bit range that payload integers have "
            f"({INT64_MIN} to {INT64_MAX}), so no point can match it"
        )
    return value


def _range(key: str, ops: dict[str, Any]) -> dict[str, float]:
    unknown = [op for op in ops if op not in RANGE_OPERATORS]
    if not ops or unknown:
        raise InputError(
            f"filter {key!r}: unknown range operator(s) {unknown or '(none given)'}; "
            f"allowed operators: {', '.join(RANGE_OPERATORS)}"
        )
    return {op: _bound(key, op, bound) for op, bound in ops.items()}


def _bound(key: str, op: str, bound: Any) -> float:
    # A NaN bound compares false with every number, so the search would match nothing without saying why.
    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
        raise InputError(f"filter {key!r}: range bound {op}={bound!r} must be a number")
    try:
        number = float(bound)
    except OverflowError:
        raise InputError(
            f"filter {key!r}: range bound {op}, an integer of {len(str(abs(bound)))} digits, is beyond the "
            "range of the floats that ranges compare"
        ) from None
    if not math.isfinite(number):
        raise InputError(
            f"filter {key!r}: range bound {op}={bound!r} must be a finite number, not NaN or infinite"
        )
    return number
