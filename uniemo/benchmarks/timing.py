"""Interleaved timing: every contender runs in the same rounds, so a ratio cancels the machine's load.

Every contender is warmed up, then the contenders run in rounds whose order alternates (A B, B A, A B, ...) so
that both see the same background load; a ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Seconds of one call of ``fn``, after a garbage collection."""
    gc.collect()  # a collection inside a timed call would be charged to whoever happened to trigger it
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each contender over ``rounds`` rounds, after ``warmup`` untimed calls each.

    The order alternates between rounds (A B C, C B A, ...), so a load change during the run hits every
    contender about equally, and each round's ratios compare calls made seconds apart.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(calls[name]))
    return times


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of time(numerator) / time(denominator)."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def summary(seconds: list[float]) -> dict[str, Any]:
    """Median, minimum and every value of a list of seconds, rounded to the microsecond."""
    return {"median_s": round(statistics.median(seconds), 6), "min_s": round(min(seconds), 6),
            "all_s": [round(s, 6) for s in seconds]}
