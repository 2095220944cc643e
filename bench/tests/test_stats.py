"""Percentile maths: nearest rank, as wrk reports it."""

from __future__ import annotations

import pytest
from bench.stats import percentile, rate, summarize


def test_nearest_rank_on_one_to_hundred():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0


def test_nearest_rank_rounds_up_between_ranks():
    values = [10, 20, 30, 40]
    assert percentile(values, 50) == 20.0  # rank ceil(2.0) = 2
    assert percentile(values, 51) == 30.0  # rank ceil(2.04) = 3
    assert percentile(values, 99) == 40.0
    assert percentile([7], 99) == 7.0


def test_percentile_rejects_nothing_and_out_of_range():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1], 101)


def test_summarize_sorts_and_reports_every_percentile():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 9.0, 8.0, 7.0, 6.0])
    assert s is not None
    assert (s.count, s.mean_us, s.max_us) == (10, 5.5, 10.0)
    assert (s.p50_us, s.p90_us, s.p95_us, s.p99_us) == (5.0, 9.0, 10.0, 10.0)


def test_summarize_of_nothing_is_none():
    assert summarize([]) is None


def test_rate():
    assert rate(3000, 1.5) == 2000.0
    assert rate(10, 0.0) == 0.0
