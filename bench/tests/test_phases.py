"""The burst and sustained ingress phases against a fake AutomateOS: the order of things, the drain, the window."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import bench.phases as phases
import pytest
from bench.loadgen import LoadResult
from bench.phases import MODE_BURST, MODE_SUSTAINED, burst_phase, sustained_phase
from bench.target import RunCounts, Webhook

REAL_SLEEP = time.sleep
ACCEPTED = 1_000


class FakeAutomateOS:
    """Records what the phase did. The measured workflow's runs are all recorded once the load is over; with the
    engine running, each look at the records finds `step` more of them ended (`stuck_at`: no further)."""

    name = "AutomateOS"

    def __init__(self, *, step: int = 250, stuck_at: int | None = None, failed: int = 0) -> None:
        self.events: list[tuple[object, ...]] = []
        self.engine = True
        self.loaded = False
        self.finished = 0
        self.step, self.stuck_at, self.failed = step, stuck_at, failed
        self.discarded = 0
        self.load_called: datetime | None = None
        self.load_returned: datetime | None = None

    def stop_engine(self) -> None:
        self.events.append(("stop engine",))
        self.engine = False

    def start_engine(self, workers: int) -> None:
        self.events.append(("start engine", workers))
        self.engine = True

    def webhook(self, label: str, route: str = "direct", definition: dict[str, object] | None = None) -> Webhook:
        self.events.append(("webhook", label, route, definition is not None))
        return Webhook(label=label, url=f"http://fake/{route}/{label}", key=label)

    def run_counts(self, hook: Webhook) -> RunCounts:
        if "warm-up" in hook.key or not self.loaded:
            return RunCounts(recorded=0, finished=0, succeeded=0)
        if self.engine:
            limit = ACCEPTED if self.stuck_at is None else self.stuck_at
            self.finished = min(limit, self.finished + self.step)
        succeeded = self.finished - min(self.failed, self.finished)
        return RunCounts(recorded=ACCEPTED, finished=self.finished, succeeded=succeeded)

    def completed_times(self, hook: Webhook) -> list[datetime]:
        assert self.load_called is not None and self.load_returned is not None and "warm-up" not in hook.key
        called, returned = self.load_called, self.load_returned
        # 1 s before the load (outside), 3 during it, 2 after it
        return [called - timedelta(seconds=1), *(called + timedelta(milliseconds=ms) for ms in (20, 60, 100)),
                returned + timedelta(seconds=1), returned + timedelta(seconds=2)]

    def backlog(self) -> int:
        return 0 if self.stuck_at is None or self.discarded else ACCEPTED - self.finished

    def discard_backlog(self) -> int:
        self.events.append(("discard",))
        self.discarded = ACCEPTED - self.finished
        return self.discarded

    def cpu_seconds(self) -> dict[str, float]:
        return {"ingress": 1.0}


@pytest.fixture
def fake(monkeypatch):
    target = FakeAutomateOS()

    def run_load(generator, url, *, body, connections, duration_s, threads, log):
        target.events.append(("load", url, connections, target.engine))
        target.load_called = datetime.now(timezone.utc)
        REAL_SLEEP(0.2)
        target.load_returned = datetime.now(timezone.utc)
        target.loaded = True
        return LoadResult(generator="wrk", connections=connections, duration_s=0.2, requests=ACCEPTED, ok=ACCEPTED,
                          non_2xx=0, socket_errors={}, latency=None)

    monkeypatch.setattr(phases, "run_load", run_load)
    monkeypatch.setattr(phases, "_warm_up", lambda url: target.events.append(("warm up", url, target.engine)))
    monkeypatch.setattr(phases.time, "sleep", lambda s: None)  # the waits poll a fake: no need to pause
    return target


def _burst(target, drain_timeout_s: float = 30.0):
    return burst_phase(target, generator="wrk", route="direct", connections=16, duration_s=0.2, threads=1, workers=2,
                       drain_timeout_s=drain_timeout_s, log=None, say=lambda _: None)


def test_burst_stops_the_engine_for_the_load_and_executes_the_backlog_after(fake):
    r = _burst(fake)
    names = [e[0] for e in fake.events]
    assert names == ["stop engine", "webhook", "warm up", "webhook", "load", "start engine"]
    assert fake.events[2][2] is False and fake.events[4][3] is False  # warm-up and load with the engine stopped
    assert fake.events[5] == ("start engine", 2)
    assert fake.events[1][3] is False and fake.events[3][3] is False  # trigger-only workflows
    assert (r.mode, r.route, r.accepted, r.counts.recorded, r.counts.succeeded) == (MODE_BURST, "direct", 1000, 1000,
                                                                                     1000)
    assert r.drain_s is not None and r.engine_start_s is not None and r.discarded == 0
    assert r.all_executed and r.lost == 0
    assert r.completed_in_load == 3  # what the fake's records say; the engine really was stopped
    assert r.cpu["ingress"] == 0.0


def test_burst_that_does_not_drain_is_discarded_and_not_executed(fake):
    fake.stuck_at = 400  # the engine stops making progress
    r = _burst(fake, drain_timeout_s=0.05)
    assert ("discard",) in fake.events
    assert r.drain_s is None and r.discarded == 600
    assert (r.counts.succeeded, r.not_succeeded, r.all_executed) == (400, 600, False)


def test_burst_runs_that_failed_are_not_executed(fake):
    fake.failed = 3
    r = _burst(fake)
    assert r.drain_s is not None and r.not_succeeded == 3 and not r.all_executed


def test_sustained_keeps_the_engine_running_and_counts_what_ended_during_the_load(fake):
    r = sustained_phase(fake, definition={"nodes": []}, generator="wrk", connections=64, duration_s=0.2, threads=1,
                        workers=2, drain_timeout_s=30.0, log=None, say=lambda _: None)
    names = [e[0] for e in fake.events]
    assert names == ["start engine", "webhook", "warm up", "webhook", "load"]
    assert fake.events[4][3] is True  # the load with the engine executing
    assert fake.events[1][3] is True and fake.events[3][3] is True  # the example definition, not trigger-only
    assert r.mode == MODE_SUSTAINED and r.engine_start_s is None
    assert r.window is not None and r.window.start <= fake.load_called and fake.load_returned <= r.window.end
    assert r.completed_in_load == 3  # not the one before the load's start, nor the two after its end
    assert 0.2 <= r.window.seconds < 0.5
    assert r.completed_per_s_in_load == pytest.approx(3 / r.window.seconds)
    assert r.backlog_at_end == ACCEPTED - 3
    assert r.drain_s is not None and r.all_executed
