"""The scheduler on real Redis: each due time fires once, missed-time policies, races, and real processes
(two at once, SIGKILLed and restarted) that fire every second exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from redis import Redis
from services.engine.tests.factories import wait_for

from automateos_common import schedule_state
from automateos_common.jsonutil import parse_iso
from automateos_common.runs import RunState, RunStore
from automateos_common.schedules import Schedule, to_ms
from automateos_devstack.servers import free_port
from automateos_engine.scheduler import Scheduler

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def put(redis: Redis, wf_id: int, sched: Schedule, now: datetime, *, owner: int = 5, version: int = 1) -> None:
    with redis.pipeline(transaction=True) as pipe:
        schedule_state.publish(pipe, workflow_id=wf_id, owner_id=owner, version=version, schedule=sched, now=now)
        pipe.execute()


def runs(redis: Redis) -> list[RunState]:
    store = RunStore(redis)
    ids = [k.decode().split(":", 2)[2] for k in redis.scan_iter(match=RunStore.key("*"), count=1000)]
    return [r for r in store.load_many(ids).values() if r is not None]


def scheduled(rs: list[RunState]) -> list[datetime]:
    return sorted(parse_iso(r.trigger_data["payload"]["scheduled_at"]) for r in rs)  # type: ignore[misc]


def test_a_due_time_fires_one_run_with_the_schedule_trigger(redis_client: Redis) -> None:
    clock = Clock(T0)
    put(redis_client, 1, Schedule(cron="*/5 * * * *", timezone="Europe/Berlin"), T0)
    sched = Scheduler(redis_client, "test", clock=clock)
    assert sched.tick() == 1.0 and runs(redis_client) == []  # nothing due yet: waits at most poll_s

    clock.now = T0 + timedelta(minutes=5, milliseconds=20)
    sched.tick()
    (run,) = runs(redis_client)
    assert (run.trigger, run.workflow_id, run.owner_id, run.status.value) == ("schedule", 1, 5, "queued")
    assert run.trigger_data == {
        "payload": {"scheduled_at": "2026-12-01T12:05:00.000Z", "scheduled_local": "2026-12-01T13:05:00+01:00",
                    "fired_at": "2026-12-01T12:05:00.020Z", "timezone": "Europe/Berlin", "cron": "*/5 * * * *",
                    "catch_up": None},
        "headers": {}, "query": {}, "method": None}
    assert redis_client.lindex("rq:queue:test", 0).decode() == run.id  # its job is queued
    assert schedule_state.next_fire_ms(redis_client, 1) == to_ms(T0 + timedelta(minutes=10))
    sched.tick()
    assert len(runs(redis_client)) == 1


def test_late_within_grace_fires_each_time_in_turn(redis_client: Redis) -> None:
    clock = Clock(T0)
    put(redis_client, 2, Schedule(interval_s=1), T0)
    clock.now = T0 + timedelta(seconds=4, milliseconds=500)  # 4.5 s late: within the 5 s minimum grace
    sched = Scheduler(redis_client, "test", clock=clock)
    for _ in range(6):
        sched.tick()
    assert scheduled(runs(redis_client)) == [T0 + timedelta(seconds=s) for s in range(1, 5)]
    assert all(r.trigger_data["payload"]["catch_up"] is None for r in runs(redis_client))


@pytest.mark.parametrize("policy", ["fire_once", "skip"])
def test_missed_times_after_a_downtime(redis_client: Redis, policy: str) -> None:
    clock = Clock(T0)
    put(redis_client, 3, Schedule(interval_s=60, missed=policy), T0)  # type: ignore[arg-type]
    clock.now = T0 + timedelta(minutes=10, seconds=30)  # down from 12:00 to 12:10:30: 12:01 ... 12:10 missed
    fired = Scheduler(redis_client, "test", clock=clock).fire(3, to_ms(T0 + timedelta(minutes=1)), clock.now)
    assert fired.next_ms == to_ms(T0 + timedelta(minutes=11))
    if policy == "skip":
        assert fired.outcome == "skipped" and runs(redis_client) == []
    else:
        (run,) = runs(redis_client)
        assert fired.outcome == "caught_up"
        assert run.trigger_data["payload"]["scheduled_at"] == "2026-12-01T12:10:00.000Z"
        assert run.trigger_data["payload"]["catch_up"] == {
            "missed": 10, "more": False, "first": "2026-12-01T12:01:00.000Z", "last": "2026-12-01T12:10:00.000Z"}
    # the time fired (or skipped) is the watermark: never fired again
    last = redis_client.hget(schedule_state.SCHED_KEY.format(3), "last")
    assert last == str(to_ms(T0 + timedelta(minutes=10))).encode()


def test_cron_missed_times_are_counted(redis_client: Redis) -> None:
    put(redis_client, 4, Schedule(cron="0 9 * * *", timezone="America/New_York"), T0)
    now = T0 + timedelta(days=3)
    fired = Scheduler(redis_client, "test").fire(4, schedule_state.next_fire_ms(redis_client, 4) or 0, now)
    (run,) = runs(redis_client)
    assert fired.outcome == "caught_up"
    assert run.trigger_data["payload"]["catch_up"] == {
        "missed": 3, "more": False, "first": "2026-12-01T14:00:00.000Z", "last": "2026-12-03T14:00:00.000Z"}


def test_a_time_already_fired_is_not_fired_again_and_a_lost_race_does_nothing(redis_client: Redis) -> None:
    clock = Clock(T0)
    put(redis_client, 5, Schedule(interval_s=10), T0)
    due = to_ms(T0 + timedelta(seconds=10))
    clock.now = T0 + timedelta(seconds=10)
    a, b = Scheduler(redis_client, "test", clock=clock), Scheduler(redis_client, "test", clock=clock)
    assert a.fire(5, due, clock.now).outcome == "fired"
    assert b.fire(5, due, clock.now).outcome == "raced"  # b read the due list before a's claim
    # a publisher whose clock is behind puts back a time already fired: the watermark refuses it
    redis_client.zadd(schedule_state.ZSET_KEY, {"5": due})
    assert b.fire(5, due, clock.now).outcome == "already_fired"
    assert len(runs(redis_client)) == 1
    assert schedule_state.next_fire_ms(redis_client, 5) == to_ms(T0 + timedelta(seconds=20))


def test_a_deleted_schedule_is_dropped(redis_client: Redis) -> None:
    redis_client.zadd(schedule_state.ZSET_KEY, {"6": 1000})
    assert Scheduler(redis_client, "test").fire(6, 1000, T0).outcome == "gone"
    assert redis_client.zcard(schedule_state.ZSET_KEY) == 0


class Schedulers:
    def __init__(self, redis: Redis, tmp: str) -> None:
        kw = redis.connection_pool.connection_kwargs
        self.redis = redis
        self.env = {**os.environ, "REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}",
                    "AUTOMATEOS_QUEUE_NAME": "test", "AUTOMATEOS_INTERNAL_TOKEN": "test-secret",
                    "AUTOMATEOS_DATA_DIR": tmp, "AUTOMATEOS_LOG_LEVEL": "WARNING", "AUTOMATEOS_SCHEDULER_POLL_S": "0.2"}
        self.procs: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self, count: int) -> None:
        started = []
        for _ in range(count):
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "automateos_engine", "scheduler", "--port", str(port)],
                                    env=self.env, start_new_session=True)
            started.append((proc, port))
        self.procs += started
        for _proc, port in started:
            wait_for(lambda p=port: _healthy(p), 30, "the scheduler's health")  # type: ignore[misc]

    def kill(self, sig: int) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
        for proc, _port in self.procs:
            proc.wait(10)
        self.procs = []


def _healthy(port: int) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json()["checks"] == {"redis": "ok", "loop": "ok"}


def test_two_processes_killed_and_restarted_fire_every_second_exactly_once(redis_client: Redis, tmp_path: Any) -> None:
    put(redis_client, 9, Schedule(interval_s=1), datetime.now(timezone.utc))
    pool = Schedulers(redis_client, str(tmp_path))
    try:
        pool.start(2)
        time.sleep(3)
        pool.kill(signal.SIGKILL)  # both at once, whatever they were doing
        time.sleep(2)  # 2 s down: within the grace, so every time is still fired, one run each
        pool.start(2)
        time.sleep(3)
    finally:
        pool.kill(signal.SIGTERM)
    rs = runs(redis_client)
    times = scheduled(rs)
    assert len(times) == len(set(times))  # no time fired twice
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]  # none lost
    assert len(times) >= 7
    assert all(r.trigger == "schedule" and r.trigger_data["payload"]["catch_up"] is None for r in rs)
    assert redis_client.llen("rq:queue:test") == len(rs)  # each run has its job
    last = int(redis_client.hget(schedule_state.SCHED_KEY.format(9), "last") or 0)
    assert last == to_ms(times[-1])
