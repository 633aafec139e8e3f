"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 7, min_seconds: float = 0.05) -> float:
    """Seconds per call: the best of ``repeats`` rounds, each long enough to time reliably."""
    number, start = 1, time.perf_counter()
    fn()
    while time.perf_counter() - start < min_seconds / 10 and number < 10**6:
        number *= 10
        start = time.perf_counter()
        for _ in range(number):
            fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return min(rounds)


def ratio(ours: Callable[[], object], builtin: Callable[[], object]) -> float:
    """time(ours) / time(builtin), measured alternately in this run."""
    return best_time(ours) / best_time(builtin)
