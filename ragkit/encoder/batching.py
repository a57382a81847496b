"""Token-budget batching: sort by length, fill each batch up to a budget of padded tokens.

Sorting keeps padding near zero; counting padded tokens (rows × longest row) bounds memory by the
budget whatever the input holds, so one 8192-token text and 5,000 short ones both run at full speed.
"""

from __future__ import annotations

from collections.abc import Sequence


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
