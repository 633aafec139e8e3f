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
    """time(ours) / time(builtin), each timed over many calls, one after the other in this run."""
    return best_time(ours) / best_time(builtin)


def interleaved_ratio(ours: Callable[[], object], other: Callable[[], object], repeats: int = 9) -> float:
    """min time of ``ours`` / min time of ``other``, single calls run alternately so that noise hits both."""
    ours(), other()                                   # warm up
    t_ours, t_other = [], []
    for _ in range(repeats):
        for f, times in ((ours, t_ours), (other, t_other)):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
    return min(t_ours) / max(min(t_other), 1e-9)
