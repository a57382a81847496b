"""Token-budget batching: sort by length, fill each batch up to a budget of padded tokens.

Sorting keeps padding near zero; counting padded tokens (rows × longest row) bounds memory by the
budget whatever the input holds, so one 8192-token text and 5,000 short ones both run at full speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def plan_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group indices into batches, longest first, with rows × longest ≤ budget (a lone row always fits)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def consecutive_groups(items: Iterable[T], size: Callable[[T], int], budget: int) -> list[list[T]]:
    """Items in their order, cut into groups whose sizes add up to at most `budget` (a lone item always
    fits): the units of work handed to the encoder one after another."""
    groups: list[list[T]] = []
    filled = 0
    for item in items:
        if not groups or filled + size(item) > budget:
            groups.append([])
            filled = 0
        groups[-1].append(item)
        filled += size(item)
    return groups
