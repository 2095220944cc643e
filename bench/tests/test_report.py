"""The Markdown report: table rendering, target verdicts, observations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bench.config import load_config
from bench.loadgen import LoadResult
from bench.machine import Commit, Machine
from bench.phases import EngineResult, IngressResult
from bench.proc import Memory
from bench.report import Report, checks, markdown_table, observations, render
from bench.stats import LatencySummary
from bench.target import ProcessMemory, RunCounts

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_markdown_table_aligns_and_escapes():
    out = markdown_table(["name", "value"], [["a|b", 1], ["c", 2.5]], "lr")
    assert out.splitlines() == [
        "| name | value |",
        "| :-- | --: |",
        "| a\\|b | 1 |",
        "| c | 2.5 |",
    ]


def test_markdown_table_rejects_a_short_row():
    with pytest.raises(ValueError, match="1 cells"):
        markdown_table(["a", "b"], [["x"]])


def ingress(route: str, connections: int, ok: int, p99_us: float, recorded: int, *, drain_s: float | None = 2.0,
            errors: dict[str, int] | None = None) -> IngressResult:
    lat = LatencySummary(count=ok, mean_us=1000, max_us=p99_us * 2, p50_us=1000, p90_us=2000, p95_us=3000,
                         p99_us=p99_us)
    load = LoadResult(generator="wrk", connections=connections, duration_s=10.0, requests=ok, ok=ok, non_2xx=0,
                      socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": 0, **(errors or {})},
                      latency=lat)
    return IngressResult(target="AutomateOS", route=route, load=load,
                         counts=RunCounts(recorded=recorded, finished=recorded, succeeded=recorded), record_s=0.5,
                         drain_s=drain_s, discarded=0 if drain_s is not None else 500,
                         cpu={"ingress": 0.98, "Redis": 0.2, "load generator": 0.054})


def engine(workflow: str, workers: int, runs: int, window_s: float, succeeded: int | None = None) -> EngineResult:
    start = T0
    counts = RunCounts(recorded=runs, finished=runs, succeeded=runs if succeeded is None else succeeded,
                       first_started=start, last_completed=start + timedelta(seconds=window_s))
    return EngineResult(workflow=workflow, workers=workers, worker_class="fork", runs=runs, counts=counts,
                        discarded=0, engine_s=window_s + 0.2, recorded=runs, record_lag_s=0.3,
                        engine_memory=Memory(4, 300 * 1024, 200 * 1024), worker_memory=[Memory(2, 150 * 1024, None)],
                        enqueue="one MULTI/EXEC for all runs")


def memory(engine_mb: float) -> list[ProcessMemory]:
    return [ProcessMemory("ingress", Memory(1, 100 * 1024, 80 * 1024), True),
            ProcessMemory("engine", Memory(3, int(engine_mb * 1024), 100 * 1024), True),
            ProcessMemory("PostgreSQL", Memory(9, 500 * 1024, 50 * 1024), False, "infrastructure")]


def report(**kw) -> Report:
    cfg = load_config([], environ={"BENCH_QUICK": "1"})
    return Report(started=T0, machine=Machine("Test CPU", 2, 8.0, "Debian", "3.11.7"),
                  commit=Commit("a" * 40, "aaaaaaa", False, "subject"), config=cfg, generator="wrk", **kw)


def test_checks_pass_and_fail_against_the_issue_targets():
    r = report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000), ingress("direct", 64, 30_000, 40_000, 30_010),
                        ingress("gateway", 16, 5_000, 90_000, 4_990)],
               engine=[engine("example", 2, 2000, 4.0), engine("example", 1, 2000, 8.0)],
               memory_end=memory(250))
    got = {c.name: (c.measured, c.passed) for c in checks(r)}
    assert got["ingress p99 latency at 16 connections"] == ("8.00 ms", True)
    assert got["accepted webhooks per second"] == ("3,000/s (at 64 connections)", True)
    # the gateway row lost 10 (recorded < accepted); direct c64 recorded 10 more than accepted: in flight, not lost
    assert got["accepted webhooks recorded as runs"] == ("10 lost of 60,000", False)
    assert got["engine: API.md example, 2 fork workers"] == ("500 runs/s", True)
    assert got["engine runs succeeded"] == ("0 of 4,000 did not", True)
    assert got["whole stack RSS after the run (four services)"] == ("350 MB", True)


def test_checks_without_measurements_say_so():
    got = {c.name: c.passed for c in checks(report())}
    assert got["ingress p99 latency at 16 connections"] is None
    assert got["engine: API.md example, 2 workers"] is None
    assert got["whole stack RSS after the run (four services)"] is None


def test_slow_results_fail():
    r = report(ingress=[ingress("direct", 16, 6_000, 75_000, 6_000)], engine=[engine("example", 2, 200, 10.0, 190)],
               memory_end=memory(500))
    got = {c.name: (c.measured, c.passed) for c in checks(r)}
    assert got["ingress p99 latency at 16 connections"] == ("75.00 ms", False)
    assert got["accepted webhooks per second"] == ("600/s (at 16 connections)", False)
    assert got["engine: API.md example, 2 fork workers"] == ("20 runs/s", False)
    assert got["engine runs succeeded"] == ("10 of 200 did not", False)
    assert got["whole stack RSS after the run (four services)"] == ("600 MB", False)


def test_observations_name_errors_and_undrained_backlogs():
    r = report(ingress=[ingress("direct", 64, 1000, 1000, 1000, drain_s=None, errors={"timeout": 3})],
               engine=[engine("chain", 1, 100, 1.0, 99)])
    notes = observations(r)
    assert notes == [
        "ingress via direct at 64 connections: 3 errors (timeout: 3).",
        "ingress via direct at 64 connections: the engine had not executed the backlog 10 s after the load; "
        "500 queued runs were discarded so the next phase starts clean.",
        "engine chain with 1 fork workers: 1 runs failed or were cancelled.",
    ]


def test_render_has_every_section_and_row():
    r = report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000)], engine=[engine("example", 2, 2000, 4.0)],
               memory_after_ingress=memory(240), memory_end=memory(250), notes=["a note"])
    text = render(r)
    for heading in ("# AutomateOS bench, 2026-01-02 03:04 UTC (quick)", "## Targets", "## Ingress",
                    "## Engine", "## Memory", "## Settings", "## Notes"):
        assert heading in text
    assert "| direct | 16 | 2,500 | 1.00 | 3.00 | 8.00 | 16.00 | 0 | 25,000 | 25,000 | 0 | 0.5 | 2.0 s |" in text
    assert "| example | 2 | fork | 2,000 | 2,000 | 0 | 4.00 | 500 | 4.2 | 0.3 | 300 | 150 | ≥400/s PASS |" in text
    assert "| **stack total (in total = yes)** | 4 | 340.0 | **350.0** | 180.0 |" in text
    assert "| route | connections | ingress | Redis | load generator | sum |" in text
    assert "| direct | 16 | 98 | 20 | 5 | 123 |" in text
    assert "- a note" in text
    assert "`aaaaaaa` subject" in text


def test_report_path_never_overwrites(tmp_path: Path):
    from bench.cli import report_path

    first = report_path(tmp_path, T0, "abc1234", quick=False)
    assert first.name == "2026-01-02-abc1234.md"
    first.write_text("x")
    assert report_path(tmp_path, T0, "abc1234", quick=False).name == "2026-01-02-abc1234-2.md"
    assert report_path(tmp_path, T0, "abc1234", quick=True).name == "2026-01-02-abc1234-quick.md"
