"""The measurements: webhook intake under load (any Target) and run throughput (AutomateOS).

Every wait is bounded (a deadline, and STALL_S without progress) and says what it was
waiting for when it gives up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from .automateos import AutomateOS
from .loadgen import LoadResult, run_load
from .proc import Memory
from .stats import rate
from .target import RunCounts, Target, Webhook

BODY = b'{"n": 1, "source": "bench", "items": ["a", "b", "c"], "ok": true}'
WARMUP_REQUESTS = 100
RECORD_TIMEOUT_S = 60.0  # accepted -> recorded is the recorder's batch cadence: seconds, not minutes
STALL_S = 30.0  # no progress for this long: give up waiting

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True)
class IngressResult:
    target: str
    route: str  # "direct" (the ingress port) or "gateway"
    load: LoadResult
    counts: RunCounts  # the phase's workflow, as recorded, when the waits ended
    record_s: float | None  # from the end of the load until every accepted webhook was a recorded run
    drain_s: float | None  # ... until the engine had executed the backlog (None: not within the bound)
    discarded: int  # runs dropped from the queue when the drain wait gave up
    cpu: dict[str, float] = field(default_factory=dict)  # process (tree) -> CPUs it kept busy during the load

    @property
    def accepted(self) -> int:
        return self.load.ok

    @property
    def lost(self) -> int:
        """Accepted (a 2xx seen by the client) but never recorded. Recorded may exceed accepted by
        the requests still in flight when the generator stopped: those count as not lost."""
        return max(0, self.accepted - self.counts.recorded)


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


def ingress_phase(target: Target, *, generator: str, route: str, connections: int, duration_s: float,
                  threads: int, drain_timeout_s: float, log: Path, say: Say) -> IngressResult:
    say(f"ingress: {target.name} via {route}, {connections} connections, {duration_s:g}s ({generator})")
    _warm_up(target.webhook(f"bench warm-up {route} c{connections}", route).url)
    hook = target.webhook(f"bench ingress {route} c{connections}", route)
    cpu_before, children_before, started = target.cpu_seconds(), _children_cpu(), time.monotonic()
    load = run_load(generator, hook.url, body=BODY, connections=connections, duration_s=duration_s, threads=threads,
                    log=log)
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
    drained_s, discarded = drain(target, timeout=drain_timeout_s, say=say)
    drain_s = None if drained_s is None else time.monotonic() - ended  # counted from the end of the load
    counts = target.run_counts(hook)  # late arrivals (in flight at the stop) are recorded by now
    return IngressResult(target=target.name, route=route, load=load, counts=counts, record_s=record_s,
                         drain_s=drain_s, discarded=discarded, cpu=cpu)


def engine_phase(target: AutomateOS, *, label: str, definition: dict[str, object], runs: int, workers: int,
                 worker_class: str | None, timeout_s: float, say: Say) -> EngineResult:
    target.configure_engine(workers, worker_class)
    cls = target.resolved_worker_class
    say(f"engine: {label}, {workers} {cls} workers, {runs} runs")
    hook = target.create_workflow(f"bench {label} w{workers} {cls}", definition)
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
    db, in_db = wait_for(lambda: target.run_counts(hook), lambda c: c.finished >= counts.finished,
                         progress=lambda c: c.finished, show=_counts, timeout=60,
                         what="the recorder to write the runs to PostgreSQL", say=say)
    result = EngineResult(
        workflow=label, workers=workers, worker_class=cls, runs=runs, counts=counts, discarded=discarded,
        engine_s=engine_done - released, recorded=db.finished,
        record_lag_s=time.monotonic() - engine_done if in_db else None,
        engine_memory=next(p.memory for p in target.memory() if p.name == "engine"),
        worker_memory=target.worker_memory(), enqueue=target.enqueue_method)
    say(f"  {counts.finished}/{runs} ended ({result.failed} not successful) in {counts.window_s or 0:.2f}s: "
        f"{result.runs_per_s:.0f} runs/s; recorder lag {result.record_lag_s or 0:.1f}s")
    return result
