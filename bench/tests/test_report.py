"""The Markdown report: table rendering, target verdicts, observations."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bench.config import load_config
from bench.loadgen import LoadResult
from bench.machine import Commit, Machine
from bench.phases import MODE_BURST, MODE_SUSTAINED, EngineResult, IngressResult, LoadWindow
from bench.proc import Memory
from bench.report import BURST, Report, checks, markdown_table, observations, render
from bench.stats import LatencySummary
from bench.target import ProcessMemory, RunCounts

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


STACK_PSS = "whole stack resident after the run (four services and the scheduler, PSS: shared pages counted once)"
STACK_RSS = "the same as a sum of RSS (stricter: every shared page once per process)"

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


WINDOW = LoadWindow(T0, T0 + timedelta(seconds=10))


def ingress(route: str, connections: int, ok: int, p99_us: float, recorded: int, *, drain_s: float | None = 2.0,
            errors: dict[str, int] | None = None, mode: str = MODE_BURST, succeeded: int | None = None,
            completed_in_load: int | None = None, engine_start_s: float | None = 1.5) -> IngressResult:
    """A row of a 10 s load. burst: nothing ends during the load; the backlog runs 2 s from 12 s after its start."""
    lat = LatencySummary(count=ok, mean_us=1000, max_us=p99_us * 2, p50_us=1000, p90_us=2000, p95_us=3000,
                         p99_us=p99_us)
    load = LoadResult(generator="wrk", connections=connections, duration_s=10.0, requests=ok, ok=ok, non_2xx=0,
                      socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": 0, **(errors or {})},
                      latency=lat)
    done = recorded if succeeded is None else succeeded
    burst = mode == MODE_BURST
    counts = RunCounts(recorded=recorded, finished=done, succeeded=done,
                       first_started=T0 + timedelta(seconds=12 if burst else 0),
                       last_completed=T0 + timedelta(seconds=14 if burst else 12))
    return IngressResult(target="AutomateOS", route=route, load=load, counts=counts, record_s=0.5, drain_s=drain_s,
                         discarded=0 if drain_s is not None else 500,
                         cpu={"ingress": 0.98, "Redis": 0.2, "load generator": 0.054}, mode=mode, window=WINDOW,
                         completed_in_load=(0 if burst else None) if completed_in_load is None else completed_in_load,
                         engine_start_s=engine_start_s if burst else None)


def sustained(connections: int, ok: int, p99_us: float, completed_in_load: int, **kw) -> IngressResult:
    return ingress("direct", connections, ok, p99_us, ok, mode=MODE_SUSTAINED, completed_in_load=completed_in_load,
                   **kw)


def engine(workflow: str, workers: int, runs: int, window_s: float, succeeded: int | None = None) -> EngineResult:
    start = T0
    counts = RunCounts(recorded=runs, finished=runs, succeeded=runs if succeeded is None else succeeded,
                       first_started=start, last_completed=start + timedelta(seconds=window_s))
    return EngineResult(workflow=workflow, workers=workers, worker_class="fork", runs=runs, counts=counts,
                        discarded=0, engine_s=window_s + 0.2, recorded=runs, record_lag_s=0.3,
                        engine_memory=Memory(4, 300 * 1024, 200 * 1024), worker_memory=[Memory(2, 150 * 1024, None)],
                        enqueue="one MULTI/EXEC for all runs")


def memory(engine_mb: float, engine_pss_mb: float = 100) -> list[ProcessMemory]:
    return [ProcessMemory("ingress", Memory(1, 100 * 1024, 80 * 1024), True),
            ProcessMemory("engine", Memory(3, int(engine_mb * 1024), int(engine_pss_mb * 1024)), True),
            ProcessMemory("PostgreSQL", Memory(9, 500 * 1024, 50 * 1024), False, "infrastructure")]


def report(**kw) -> Report:
    cfg = load_config([], environ={"BENCH_QUICK": "1"})
    return Report(started=T0, machine=Machine("Test CPU", 2, 8.0, "Debian", "3.11.7"),
                  commit=Commit("a" * 40, "aaaaaaa", False, "subject"), config=cfg, generator="wrk", **kw)


P99 = f"ingress p99 latency at 16 connections ({BURST})"
RPS = f"accepted webhooks per second ({BURST})"
LOST = "accepted webhooks recorded as runs (every row)"
EXECUTED = "accepted webhooks executed (burst rows: every recorded run ended successfully)"


def test_checks_pass_and_fail_against_the_issue_targets():
    r = report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000), ingress("direct", 64, 30_000, 40_000, 30_010),
                        ingress("gateway", 16, 5_000, 90_000, 4_990)],
               engine=[engine("example", 2, 2000, 4.0), engine("example", 1, 2000, 8.0)],
               memory_end=memory(250))
    got = {c.name: (c.measured, c.passed) for c in checks(r)}
    assert "burst: engine stopped during the load, backlog executed after" in P99
    assert got[P99] == ("8.00 ms", True)
    assert got[RPS] == ("3,000/s (at 64 connections)", True)
    # the gateway row lost 10 (recorded < accepted); direct c64 recorded 10 more than accepted: in flight, not lost
    assert got[LOST] == ("10 lost of 60,000", False)
    assert got[EXECUTED] == ("0 of 60,000 did not", True)
    assert got["engine: API.md example, 2 fork workers"] == ("500 runs/s", True)
    assert got["engine runs succeeded"] == ("0 of 4,000 did not", True)
    assert got[STACK_PSS] == ("180 MB", True)
    assert got[STACK_RSS] == ("350 MB", True)


def test_ingress_targets_are_judged_on_burst_rows_only():
    # sustained rows: slower and with the p99 far off; burst rows pass. Only "none lost" looks at every row.
    fast = [ingress("direct", 16, 25_000, 8_000, 25_000), ingress("direct", 64, 22_000, 30_000, 22_000)]
    slow = [sustained(16, 12_000, 60_000, 900), sustained(64, 40_000, 90_000, 800)]
    got = {c.name: (c.measured, c.passed) for c in checks(report(ingress=fast + slow))}
    assert got[P99] == ("8.00 ms", True)
    assert got[RPS] == ("2,500/s (at 16 connections)", True)  # not the sustained c64's 4,000/s
    assert got[LOST] == ("0 lost of 99,000", True)
    # sustained rows only: the burst targets are not measured
    got = {c.name: c.passed for c in checks(report(ingress=slow))}
    assert got[P99] is None and got[RPS] is None and got[EXECUTED] is None
    assert got[LOST] is True


def test_executed_fails_when_a_burst_backlog_was_not_run_or_failed():
    undrained = ingress("direct", 64, 30_000, 40_000, 30_000, drain_s=None, succeeded=12_000)
    got = {c.name: (c.measured, c.passed) for c in
           checks(report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000), undrained]))}
    assert got[EXECUTED] == ("18,000 of 55,000 did not (not executed within the drain bound: direct c64)", False)
    failed = ingress("direct", 16, 25_000, 8_000, 25_000, succeeded=24_990)  # all ended in time, 10 not successfully
    got = {c.name: (c.measured, c.passed) for c in checks(report(ingress=[failed]))}
    assert got[EXECUTED] == ("10 of 25,000 did not", False)
    assert failed.drain_s is not None and not failed.all_executed
    # a sustained row that did not drain does not make the burst check fail
    got = {c.name: c.passed for c in checks(report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000),
                                                           sustained(16, 9_000, 9_000, 500, drain_s=None)]))}
    assert got[EXECUTED] is True


def test_checks_without_measurements_say_so():
    got = {c.name: c.passed for c in checks(report())}
    assert got[P99] is None
    assert got[EXECUTED] is None
    assert got["engine: API.md example, 2 workers"] is None
    assert got[STACK_PSS] is None and got[STACK_RSS] is None


def test_slow_results_fail():
    r = report(ingress=[ingress("direct", 16, 6_000, 75_000, 6_000)], engine=[engine("example", 2, 200, 10.0, 190)],
               memory_end=memory(500, engine_pss_mb=450))
    got = {c.name: (c.measured, c.passed) for c in checks(r)}
    assert got[P99] == ("75.00 ms", False)
    assert got[RPS] == ("600/s (at 16 connections)", False)
    assert got["engine: API.md example, 2 fork workers"] == ("20 runs/s", False)
    assert got["engine runs succeeded"] == ("10 of 200 did not", False)
    assert got[STACK_PSS] == ("530 MB", False)
    assert got[STACK_RSS] == ("600 MB", False)


def test_completed_during_the_load_counts_the_window_only():
    window = LoadWindow(T0, T0 + timedelta(seconds=4))
    at = [T0 - timedelta(milliseconds=1), T0, T0 + timedelta(seconds=1.5), T0 + timedelta(seconds=4),
          T0 + timedelta(seconds=4, microseconds=1), T0 + timedelta(seconds=9)]
    assert window.seconds == 4.0
    assert window.count_within(at) == 3  # both ends included; 1 ms before and 1 us after are not
    r = sustained(16, 1_000, 9_000, completed_in_load=window.count_within(at))
    r = dataclasses.replace(r, window=window, counts=dataclasses.replace(r.counts, recorded=1_004))
    assert r.completed_per_s_in_load == 0.75  # 3 runs / 4 s
    assert r.backlog_at_end == 1_001  # recorded, less those that had ended by the load's end
    assert dataclasses.replace(r, completed_in_load=None).completed_per_s_in_load is None  # target cannot tell
    assert dataclasses.replace(r, window=None).completed_per_s_in_load is None


def test_observations_name_errors_and_undrained_backlogs():
    r = report(ingress=[ingress("direct", 64, 1000, 1000, 1000, drain_s=None, errors={"timeout": 3}),
                        sustained(16, 1000, 1000, 100, drain_s=None),
                        ingress("direct", 16, 1000, 1000, 1000, succeeded=990)],
               engine=[engine("chain", 1, 100, 1.0, 99)])
    notes = observations(r)
    assert notes == [
        "ingress (burst) via direct at 64 connections: 3 errors (timeout: 3).",
        "ingress (burst) via direct at 64 connections: the engine had not executed the backlog 45 s after its "
        "start; 500 queued runs were discarded (they stay `queued`): not every accepted webhook was run.",
        "ingress (sustained) via direct at 16 connections: the engine had not executed the backlog 45 s after the "
        "load; 500 queued runs were discarded so the next phase starts clean.",
        "ingress (burst) via direct at 16 connections: 10 of 1,000 recorded runs did not succeed.",
        "engine chain with 1 fork workers: 1 runs failed or were cancelled.",
    ]


def test_render_has_every_section_and_row():
    r = report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000), sustained(16, 12_000, 30_000, 1_500)],
               engine=[engine("example", 2, 2000, 4.0)], memory_after_engine=memory(240), memory_end=memory(250),
               notes=["a note"])
    text = render(r)
    for heading in ("# AutomateOS bench, 2026-01-02 03:04 UTC (quick)", "## Targets", "## Ingress",
                    "## Engine", "## Memory", "## Settings", "## Notes"):
        assert heading in text
    assert ("| mode | route | connections | accepted/s | completed/s during load | p50 ms | p95 ms | p99 ms | max ms |"
            " errors | accepted | recorded | lost | succeeded | recorded in s | backlog at load end |"
            " backlog executed in | target |") in text
    # burst: nothing ends during the load; its 25,000 ran in 2 s (12 s to 14 s) once the engine started (1.5 s)
    assert ("| burst | direct | 16 | 2,500 | - (stopped) | 1.00 | 3.00 | 8.00 | 16.00 | 0 | 25,000 | 25,000 | 0 |"
            " 25,000 | 0.5 | 25,000 | 2.0 s (engine start 1.5 s; 12,500 runs/s) | ≥2,000/s PASS; p99<10 ms FAIL |"
            ) not in text  # p99 8 ms passes:
    assert ("| burst | direct | 16 | 2,500 | - (stopped) | 1.00 | 3.00 | 8.00 | 16.00 | 0 | 25,000 | 25,000 | 0 |"
            " 25,000 | 0.5 | 25,000 | 2.0 s (engine start 1.5 s; 12,500 runs/s) | ≥2,000/s PASS; p99<10 ms PASS |"
            ) in text
    # sustained: 1,500 ended inside the 10 s window, 10,500 left; no target cell
    assert ("| sustained | direct | 16 | 1,200 | 150 | 1.00 | 3.00 | 30.00 | 60.00 | 0 | 12,000 | 12,000 | 0 |"
            " 12,000 | 0.5 | 10,500 | 2.0 s |  |") in text
    assert "| example | 2 | fork | 2,000 | 2,000 | 0 | 4.00 | 500 | 4.2 | 0.3 | 300 | 150 | - | ≥400/s PASS |" in text
    assert "| **stack total (in total = yes)** | 4 | 340.0 | 350.0 | **180.0** |" in text
    assert "target < 400 MB (PSS): PASS; RSS sum: PASS" in text
    assert "| mode | route | connections | ingress | Redis | load generator | sum |" in text
    assert "| burst | direct | 16 | 98 | 20 | 5 | 123 |" in text
    assert "| sustained | direct | 16 | 98 | 20 | 5 | 123 |" in text
    assert "- **burst** (the ingress's own capacity; the ingress targets are judged on these rows)" in text
    assert "- **sustained** (end to end, the rows compared with n8n)" in text
    assert f"| {EXECUTED} | all | 0 of 25,000 did not | PASS |" in text
    assert "- a note" in text
    assert "`aaaaaaa` subject" in text
    assert "CPU speed probe" not in text  # not measured: no line


def test_render_shows_the_speed_probes():
    e = dataclasses.replace(engine("example", 2, 2000, 4.0), speed_ms=21.04)
    text = render(report(engine=[e], speed_ms={"start": 20.0, "end": 31.46}))
    assert "lower is faster; the same machine varies): 20.0 ms at the start, 31.5 ms at the end" in text
    assert "| 300 | 150 | 21.0 | ≥400/s PASS |" in text


def test_the_speed_probe_times_real_work():
    from bench.machine import speed_probe

    ms = speed_probe(repeat=2)
    assert 0.1 < ms < 60_000


def test_report_path_never_overwrites(tmp_path: Path):
    from bench.cli import report_path

    first = report_path(tmp_path, T0, "abc1234", quick=False)
    assert first.name == "2026-01-02-abc1234.md"
    first.write_text("x")
    assert report_path(tmp_path, T0, "abc1234", quick=False).name == "2026-01-02-abc1234-2.md"
    assert report_path(tmp_path, T0, "abc1234", quick=True).name == "2026-01-02-abc1234-quick.md"
