"""The measurements: webhook intake under load (any Target) and run throughput (AutomateOS).

Every wait is bounded (a deadline, and STALL_S without progress) and says what it was
waiting for when it gives up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .automateos import AutomateOS
from .loadgen import LoadResult, run_load
from .machine import speed_probe
from .proc import Memory
from .stats import rate
from .target import RunCounts, Target, Webhook

BODY = b'{"n": 1, "source": "bench", "items": ["a", "b", "c"], "ok": true}'
WARMUP_REQUESTS = 100
ENGINE_WARMUP_RUNS = 50  # per engine row, before its measured runs
RECORD_TIMEOUT_S = 60.0  # accepted -> recorded is the recorder's batch cadence: seconds, not minutes
STALL_S = 30.0  # no progress for this long: give up waiting
WARM_UP_DRAIN_S = 60.0  # sustained: longest wait for the warm-up's runs to be executed before the load

# AutomateOS's ingress rows (bench.config.INGRESS_MODES); a peer's rows are MODE_REGULAR.
MODE_BURST = "burst"  # trigger-only workflow, engine stopped during the load; the backlog executed after it
MODE_SUSTAINED = "sustained"  # API.md's example, the engine executing during the load
MODE_REGULAR = "regular"  # n8n's regular mode: one process accepts and executes

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True)
class LoadWindow:
    """The load's wall-clock span, UTC: just before the load generator started, just after it exited
    (its start and exit, a few ms, included)."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def count_within(self, times: Iterable[datetime]) -> int:
        """How many of `times` fall inside the window (both ends included)."""
        return sum(1 for t in times if self.start <= t <= self.end)


@dataclass(frozen=True)
class IngressResult:
    target: str
    route: str  # "direct" (the ingress port) or "gateway"
    load: LoadResult
    counts: RunCounts  # the phase's workflow, as recorded, when the waits ended
    record_s: float | None  # from the end of the load until every accepted webhook was a recorded run
    # burst: from the engine's start after the load, sustained and peers: from the end of the load, until every
    # recorded run had ended (None: not within the drain bound)
    drain_s: float | None
    discarded: int  # runs dropped from the queue when the drain wait gave up
    cpu: dict[str, float] = field(default_factory=dict)  # process (tree) -> CPUs it kept busy during the load
    mode: str = MODE_REGULAR  # burst | sustained (AutomateOS, see MODES) | regular (a peer: n8n's regular mode)
    window: LoadWindow | None = None
    completed_in_load: int | None = None  # runs of the workflow whose end falls inside `window` (None: unknown)
    engine_start_s: float | None = None  # burst: starting the engine after the load, until its workers registered

    @property
    def accepted(self) -> int:
        return self.load.ok

    @property
    def lost(self) -> int:
        """Accepted (a 2xx seen by the client) but never recorded. Recorded may exceed accepted by
        the requests still in flight when the generator stopped: those count as not lost."""
        return max(0, self.accepted - self.counts.recorded)

    @property
    def completed_per_s_in_load(self) -> float | None:
        """Runs that ended during the load, per second of the load (its wall-clock window)."""
        if self.window is None or self.completed_in_load is None or self.window.seconds <= 0:
            return None
        return rate(self.completed_in_load, self.window.seconds)

    @property
    def backlog_at_end(self) -> int | None:
        """Recorded runs that had not ended when the load ended (the workflow is the phase's own, so none ended
        before it began)."""
        if self.completed_in_load is None:
            return None
        return max(0, self.counts.recorded - self.completed_in_load)

    @property
    def not_succeeded(self) -> int:
        """Recorded runs that had not ended successfully when the waits ended (not run, failed, cancelled)."""
        return max(0, self.counts.recorded - self.counts.succeeded)

    @property
    def all_executed(self) -> bool:
        """The backlog was executed within the bound and every recorded run succeeded."""
        return self.drain_s is not None and self.not_succeeded == 0


@dataclass(frozen=True)
class EngineResult:
    workflow: str
    workers: int
    worker_class: str
    runs: int
    counts: RunCounts  # from the engine's run state in Redis
    discarded: int  # not started within the bound, so taken off the queue
    engine_s: float  # release -> the queue empty and every run ended
    recorded: int  # ... of which the database had as finished when the wait for the recorder ended
    record_lag_s: float | None  # engine done -> all in the database (None: not within the bound)
    engine_memory: Memory
    worker_memory: list[Memory]
    enqueue: str
    speed_ms: float | None = None  # machine.speed_probe() just before the runs were released (workers idle)

    @property
    def runs_per_s(self) -> float:
        window = self.counts.window_s
        return rate(self.counts.finished, window) if window else 0.0

    @property
    def failed(self) -> int:
        return self.counts.finished - self.counts.succeeded


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], *, progress: Callable[[T], int],
             show: Callable[[T], str], timeout: float, what: str, say: Say, poll_s: float = 0.25) -> tuple[T, bool]:
    """Poll until `done`; give up after `timeout`, or after STALL_S without `progress` changing."""
    start = time.monotonic()
    last_value, last_move, last_say = None, start, start
    while True:
        value = probe()
        if done(value):
            return value, True
        now = time.monotonic()
        marker = progress(value)
        if marker != last_value:
            last_value, last_move = marker, now
        if now - start > timeout or now - last_move > STALL_S:
            why = f"no progress for {STALL_S:.0f}s" if now - last_move > STALL_S else f"the {timeout:.0f}s bound"
            say(f"  gave up waiting for {what} after {now - start:.0f}s ({why}): {show(value)}")
            return value, False
        if now - last_say > 10:
            say(f"  waiting for {what}: {show(value)}")
            last_say = now
        time.sleep(poll_s)


def _counts(c: RunCounts) -> str:
    return f"{c.recorded} recorded, {c.finished} finished"


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children: the load generator, once it has exited."""
    t = os.times()
    return t.children_user + t.children_system


def _warm_up(url: str) -> None:
    """A few sequential requests, so the measured phase starts on warm code paths and pools."""
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for _ in range(WARMUP_REQUESTS):
            client.post(url, content=BODY, headers={"Content-Type": "application/json"})


def drain(target: Target, *, timeout: float, say: Say) -> tuple[float | None, int]:
    """Wait for the backlog to be executed; past `timeout`, discard it. (seconds or None, discarded)."""
    start = time.monotonic()
    if timeout > 0:
        _, drained = wait_for(target.backlog, lambda n: n == 0, progress=lambda n: n, show=lambda n: f"{n} to go",
                              timeout=timeout, what="the engine to execute the backlog", say=say, poll_s=0.5)
        if drained:
            return time.monotonic() - start, 0
    discarded = target.discard_backlog()
    say(f"  discarded {discarded} queued runs, so the next phase starts on an empty queue")
    deadline = time.monotonic() + 30
    while target.backlog() and time.monotonic() < deadline:  # jobs still running, or late arrivals queued
        time.sleep(0.5)
        discarded += target.discard_backlog()
    return None, discarded


def settle(target: Target, hook: Webhook, *, quiet_s: float = 1.0, timeout: float = 15.0) -> RunCounts:
    """The run counts once they stop growing: requests in flight when the generator stopped are still
    being accepted (and recorded) for a moment after it."""
    counts = target.run_counts(hook)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = target.run_counts(hook)
        if now.recorded == counts.recorded:
            return now
        counts = now
    return counts


def execute_backlog(target: Target, hook: Webhook, *, timeout: float, say: Say) -> tuple[float | None, int]:
    """Wait until every recorded run of `hook`'s workflow has ended, as the target's records show (AutomateOS:
    executed by the engine and written to PostgreSQL by the recorder). Past `timeout` the queue is discarded as
    drain() does. (seconds or None, discarded)."""
    start = time.monotonic()
    _, done = wait_for(lambda: target.run_counts(hook), lambda c: c.finished >= c.recorded,
                       progress=lambda c: c.finished, show=_counts, timeout=timeout,
                       what="every recorded run to be executed", say=say, poll_s=0.5)
    if done:
        return time.monotonic() - start, 0
    return drain(target, timeout=0, say=say)


@dataclass(frozen=True)
class _Loaded:
    load: LoadResult
    window: LoadWindow
    cpu: dict[str, float]
    record_s: float | None
    ended: float  # time.monotonic() at the end of the load


def _load(target: Target, hook: Webhook, *, generator: str, connections: int, duration_s: float, threads: int,
          log: Path, say: Say) -> _Loaded:
    """The load, its CPU use, then the wait until every accepted webhook is a recorded run."""
    cpu_before, children_before, started = target.cpu_seconds(), _children_cpu(), time.monotonic()
    window_start = datetime.now(timezone.utc)
    load = run_load(generator, hook.url, body=BODY, connections=connections, duration_s=duration_s, threads=threads,
                    log=log)
    window = LoadWindow(window_start, datetime.now(timezone.utc))
    ended = time.monotonic()
    cpu = {name: (used - cpu_before.get(name, used)) / (ended - started)
           for name, used in target.cpu_seconds().items()}
    cpu["load generator"] = (_children_cpu() - children_before) / (ended - started)
    say(f"  {load.ok} accepted ({load.ok_per_s:.0f}/s), {load.errors} errors; waiting until each is a recorded run")
    _, recorded = wait_for(lambda: target.run_counts(hook), lambda c: c.recorded >= load.ok,
                           progress=lambda c: c.recorded, show=_counts, timeout=RECORD_TIMEOUT_S,
                           what="accepted webhooks to be recorded", say=say)
    record_s = time.monotonic() - ended if recorded else None
    settle(target, hook)
    return _Loaded(load=load, window=window, cpu=cpu, record_s=record_s, ended=ended)


def _result(target: Target, hook: Webhook, loaded: _Loaded, *, mode: str, route: str, drain_s: float | None,
            discarded: int, engine_start_s: float | None = None) -> IngressResult:
    counts = target.run_counts(hook)  # late arrivals (in flight at the stop) are recorded by now
    times = target.completed_times(hook)
    return IngressResult(target=target.name, route=route, load=loaded.load, counts=counts, record_s=loaded.record_s,
                         drain_s=drain_s, discarded=discarded, cpu=loaded.cpu, mode=mode, window=loaded.window,
                         completed_in_load=None if times is None else loaded.window.count_within(times),
                         engine_start_s=engine_start_s)


def ingress_phase(target: Target, *, generator: str, route: str, connections: int, duration_s: float,
                  threads: int, drain_timeout_s: float, log: Path, say: Say) -> IngressResult:
    """Any target as it runs by itself (a peer: n8n accepts and executes in one process): its cheapest webhook
    under load, then the wait for its backlog (drain())."""
    say(f"ingress: {target.name} via {route}, {connections} connections, {duration_s:g}s ({generator})")
    _warm_up(target.webhook(f"bench warm-up {route} c{connections}", route).url)
    hook = target.webhook(f"bench ingress {route} c{connections}", route)
    loaded = _load(target, hook, generator=generator, connections=connections, duration_s=duration_s,
                   threads=threads, log=log, say=say)
    drained_s, discarded = drain(target, timeout=drain_timeout_s, say=say)
    drain_s = None if drained_s is None else time.monotonic() - loaded.ended  # counted from the end of the load
    return _result(target, hook, loaded, mode=MODE_REGULAR, route=route, drain_s=drain_s, discarded=discarded)


def _say_executed(r: IngressResult, say: Say) -> None:
    if r.drain_s is None:
        say(f"  backlog not executed within the bound: {r.discarded} discarded, "
            f"{r.counts.succeeded}/{r.counts.recorded} recorded runs succeeded")
    else:
        say(f"  all {r.counts.recorded} recorded runs ended in {r.drain_s:.1f}s, {r.counts.succeeded} succeeded")


def burst_phase(target: AutomateOS, *, generator: str, route: str, connections: int, duration_s: float,
                threads: int, workers: int, drain_timeout_s: float, log: Path, say: Say) -> IngressResult:
    """The ingress by itself: a trigger-only workflow, the engine stopped during the load (warm-up included), so
    the accepted runs pile up on the queue. Once every accepted webhook is a recorded run the engine starts with
    `workers` workers and the bench waits (at most `drain_timeout_s` from that start) until every recorded run
    has ended; past that the queue is discarded."""
    say(f"ingress (burst): {route}, {connections} connections, {duration_s:g}s ({generator}), engine stopped")
    target.stop_engine()
    _warm_up(target.webhook(f"bench warm-up burst {route} c{connections}", route).url)
    hook = target.webhook(f"bench burst {route} c{connections}", route)
    loaded = _load(target, hook, generator=generator, connections=connections, duration_s=duration_s,
                   threads=threads, log=log, say=say)
    say(f"  starting the engine ({workers} workers) to execute the backlog")
    begun = time.monotonic()
    target.start_engine(workers)
    engine_start_s = time.monotonic() - begun
    drained_s, discarded = execute_backlog(target, hook, timeout=max(0.0, drain_timeout_s - engine_start_s), say=say)
    drain_s = None if drained_s is None else time.monotonic() - begun  # the engine's start-up included
    result = _result(target, hook, loaded, mode=MODE_BURST, route=route, drain_s=drain_s, discarded=discarded,
                     engine_start_s=engine_start_s)
    _say_executed(result, say)
    return result


def sustained_phase(target: AutomateOS, *, definition: dict[str, Any], generator: str, connections: int,
                    duration_s: float, threads: int, workers: int, drain_timeout_s: float, log: Path,
                    say: Say) -> IngressResult:
    """End to end: `definition` (API.md's example) under load with the engine executing meanwhile (`workers`
    workers), direct to the ingress. The warm-up's runs are executed before the load starts, so the queue starts
    empty; after it the bench waits (at most `drain_timeout_s` from its end) until every recorded run has ended."""
    target.start_engine(workers)  # a no-op when it runs with that many
    say(f"ingress (sustained): direct, {connections} connections, {duration_s:g}s ({generator}), "
        f"{workers} engine workers executing")
    _warm_up(target.webhook(f"bench warm-up sustained c{connections}", "direct", definition).url)
    wait_for(target.backlog, lambda n: n == 0, progress=lambda n: n, show=lambda n: f"{n} to go",
             timeout=WARM_UP_DRAIN_S, what="the warm-up's runs to be executed", say=say, poll_s=0.2)
    hook = target.webhook(f"bench sustained c{connections}", "direct", definition)
    loaded = _load(target, hook, generator=generator, connections=connections, duration_s=duration_s,
                   threads=threads, log=log, say=say)
    remaining = max(0.0, drain_timeout_s - (time.monotonic() - loaded.ended))
    drained_s, discarded = execute_backlog(target, hook, timeout=remaining, say=say)
    drain_s = None if drained_s is None else time.monotonic() - loaded.ended  # counted from the end of the load
    result = _result(target, hook, loaded, mode=MODE_SUSTAINED, route="direct", drain_s=drain_s,
                     discarded=discarded)
    say(f"  {result.completed_in_load} runs ended during the load ({result.completed_per_s_in_load or 0:.0f}/s), "
        f"{result.backlog_at_end} left at its end")
    _say_executed(result, say)
    return result


def engine_phase(target: AutomateOS, *, label: str, definition: dict[str, object], runs: int, workers: int,
                 worker_class: str | None, timeout_s: float, say: Say) -> EngineResult:
    target.configure_engine(workers, worker_class)
    cls = target.resolved_worker_class
    say(f"engine: {label}, {workers} {cls} workers, {runs} runs")
    hook = target.create_workflow(f"bench {label} w{workers} {cls}", definition)
    # Warm-up, as for the ingress: the workers were just (re)started; their first runs build the plan, open
    # the HTTP and Redis connections and fill Python's caches. Run and waited for, not counted.
    target.enqueue(hook, ENGINE_WARMUP_RUNS)
    wait_for(target.backlog, lambda n: n == 0, progress=lambda n: n, show=lambda n: f"{n} queued or running",
             timeout=timeout_s, what="the warm-up runs", say=say, poll_s=0.1)
    speed = speed_probe()  # how fast the machine is now: a row is one sample of a VM that varies
    ids = target.enqueue(hook, runs)
    released = time.monotonic()
    _, executed = wait_for(target.backlog, lambda n: n == 0, progress=lambda n: n,
                           show=lambda n: f"{n} queued or running", timeout=timeout_s,
                           what=f"{runs} runs to be executed", say=say, poll_s=0.2)
    discarded = 0
    if not executed:  # the rate is measured on the runs that ended; the rest would only cost time
        discarded = target.discard_backlog()
        say(f"  discarded the {discarded} runs not started yet")
        wait_for(target.backlog, lambda n: n == 0, progress=lambda n: n, show=lambda n: f"{n} still running",
                 timeout=30, what="the runs in progress", say=say)
    counts, _ = wait_for(lambda: target.run_states(ids), lambda c: c.finished >= runs - discarded,
                         progress=lambda c: c.finished, show=_counts, timeout=10, what="the last runs to end", say=say)
    engine_done = time.monotonic()
    # The workflow's rows in PostgreSQL include the warm-up's: those have all ended by now.
    db, in_db = wait_for(lambda: target.run_counts(hook), lambda c: c.finished >= ENGINE_WARMUP_RUNS + counts.finished,
                         progress=lambda c: c.finished, show=_counts, timeout=60,
                         what="the recorder to write the runs to PostgreSQL", say=say)
    result = EngineResult(
        workflow=label, workers=workers, worker_class=cls, runs=runs, counts=counts, discarded=discarded,
        engine_s=engine_done - released, recorded=max(0, db.finished - ENGINE_WARMUP_RUNS),
        record_lag_s=time.monotonic() - engine_done if in_db else None,
        engine_memory=next(p.memory for p in target.memory() if p.name == "engine"),
        worker_memory=target.worker_memory(), enqueue=target.enqueue_method, speed_ms=speed)
    say(f"  {counts.finished}/{runs} ended ({result.failed} not successful) in {counts.window_s or 0:.2f}s: "
        f"{result.runs_per_s:.0f} runs/s; recorder lag {result.record_lag_s or 0:.1f}s")
    return result
