"""Latency percentiles and rates: the maths the report relies on, kept pure for the tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of values sorted ascending: the smallest value with at least q% of
    the values at or below it (wrk's `latency:percentile(q)` means the same). q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside [0, 100]")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Latencies in microseconds (wrk's unit)."""

    count: int
    mean_us: float
    max_us: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float


def summarize(latencies_us: Sequence[float]) -> LatencySummary | None:
    if not latencies_us:
        return None
    ordered = sorted(latencies_us)
    p50, p90, p95, p99 = (percentile(ordered, q) for q in PERCENTILES)
    return LatencySummary(count=len(ordered), mean_us=sum(ordered) / len(ordered), max_us=float(ordered[-1]),
                          p50_us=p50, p90_us=p90, p95_us=p95, p99_us=p99)


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 when no time passed (nothing measurable, not infinity)."""
    return count / seconds if seconds > 0 else 0.0
