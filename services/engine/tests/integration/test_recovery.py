"""Real worker processes: a SIGKILLed worker's run is finished by another; parked delays free the worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from services.engine.tests.factories import publish, queue_run, wait_for

from automateos_common.runs import RunState, RunStatus, RunStore, StepStatus
from automateos_devstack.servers import RedisServer
from automateos_devstack.testing import EchoServer

pytestmark = pytest.mark.integration


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (RQ's work-horse calls setsid, so a process group misses it)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Workers:
    """Starts `automateos-engine worker` processes and kills them the hard way."""

    def __init__(self, redis: Redis, env: dict[str, str]) -> None:
        kw = redis.connection_pool.connection_kwargs
        self.env = {**os.environ, "REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}",
                    "AUTOMATEOS_QUEUE_NAME": "test", "AUTOMATEOS_EGRESS_ALLOW": "127.0.0.1",
                    "AUTOMATEOS_INTERNAL_TOKEN": "test-secret", "AUTOMATEOS_LOG_LEVEL": "WARNING", **env}
        self.redis = redis
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        before = self.redis.scard("rq:workers")
        proc = subprocess.Popen([sys.executable, "-m", "automateos_engine", "worker"], env=self.env,
                                start_new_session=True)
        self.procs.append(proc)
        wait_for(lambda: self.redis.scard("rq:workers") > before, 30, "the worker to register")
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGKILL the worker and everything under it (work-horse, scheduler) at once; returns how many."""
        pids = [proc.pid, *descendants(proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        return len(pids)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture
def workers(redis_client: Redis) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(**env: str) -> Workers:
        w = Workers(redis_client, env)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop_all()


def load(redis: Redis, run_id: str) -> RunState:
    run = RunStore(redis).load(run_id)
    assert run is not None
    return run


@pytest.mark.parametrize("recovery_s", [10, 3])
def test_a_sigkilled_worker_s_run_is_finished_by_another_worker_in_bounded_time(redis_client, workers, recovery_s):
    echo = EchoServer()
    with echo:
        call = {"type": "http_request", "config": {"method": "POST", "body": "{{trigger.payload}}",
                                                   "idempotency_key": True}}
        publish(redis_client, {"nodes": [
            {"id": "t", "type": "webhook"},
            {"id": "first", **call, "config": {**call["config"], "url": f"{echo.url}/first"}},
            {"id": "slow", **call, "config": {**call["config"], "url": f"{echo.url}/sleep/6/slow"}},
            {"id": "last", **call, "config": {**call["config"], "url": f"{echo.url}/last"}},
        ]})
        pool = workers(AUTOMATEOS_RECOVERY_TIMEOUT_S=str(recovery_s), AUTOMATEOS_WORKER_CLASS="fork")
        doomed = pool.start()
        queued = queue_run(redis_client, {"order": 42})

        def requests_to(path: str) -> list[dict[str, Any]]:
            return [r for r in echo.requests if r["path"] == path]

        # A 6 s step: time enough to start the survivor (a second or two; more on a busy machine) mid-step.
        wait_for(lambda: requests_to("/sleep/6/slow"), 30, "the slow step to start")
        survivor = pool.start()
        assert pool.kill(doomed) >= 2  # worker and work-horse (and its scheduler), mid-step
        killed_at = time.monotonic()
        assert load(redis_client, queued.id).status == RunStatus.RUNNING

        done = wait_for(lambda: (r := load(redis_client, queued.id)).is_terminal and r, recovery_s + 15,
                        "the run to finish")

        assert done.status == RunStatus.SUCCESS, done.error_message
        slow_calls = requests_to("/sleep/6/slow")
        assert len(slow_calls) == 2  # the interrupted step ran again ...
        picked_up_after = slow_calls[1]["at"] - killed_at
        assert picked_up_after < recovery_s, picked_up_after  # ... within the recovery time
        assert len(requests_to("/first")) == 1  # completed steps were not run again
        assert len(requests_to("/last")) == 1
        # Both tries of the interrupted call carried one Idempotency-Key, so the API can drop the repeat.
        assert slow_calls[0]["headers"]["Idempotency-Key"] == slow_calls[1]["headers"]["Idempotency-Key"]
        steps = {s.key: s for s in done.steps}
        assert [steps[k].attempts for k in ("t", "first", "slow", "last")] == [1, 1, 2, 1]
        assert int(redis_client.hget(RunStore.key(queued.id), "interruptions")) == 1
        assert survivor.poll() is None


def test_a_hundred_delayed_runs_park_on_one_worker_and_all_finish(redis_client, workers):
    delay_s = 4
    publish(redis_client, {"nodes": [
        {"id": "t", "type": "webhook"},
        {"id": "wait", "type": "delay", "config": {"seconds": delay_s}},
        {"id": "after", "type": "transform", "config": {"value": {"n": "{{trigger.payload.n}}"}}},
    ]})
    pool = workers(AUTOMATEOS_WORKER_CLASS="simple")
    pool.start()
    started = time.monotonic()
    ids = [queue_run(redis_client, {"n": i}).id for i in range(100)]
    store = RunStore(redis_client)

    def statuses() -> list[RunStatus]:
        return [r.status for r in store.load_many(ids).values()]

    # One worker takes all hundred and parks each: none holds it while it waits.
    wait_for(lambda: statuses().count(RunStatus.WAITING) == 100, 30, "all 100 runs to be waiting together")
    assert time.monotonic() - started < delay_s  # all parked before the first one's delay ended
    wait_for(lambda: statuses().count(RunStatus.SUCCESS) == 100, 60, "all 100 runs to finish")
    elapsed = time.monotonic() - started

    assert elapsed < 3 * delay_s  # concurrently: not 100 delays one after another
    runs = store.load_many(ids)
    for i, run_id in enumerate(ids):
        steps = {s.key: s for s in runs[run_id].steps}
        assert steps["wait"].status == StepStatus.SUCCESS
        assert (steps["wait"].completed_at - steps["wait"].started_at).total_seconds() >= delay_s
        assert steps["after"].output == {"n": i}


def test_a_parked_run_continues_after_every_worker_was_restarted(redis_client, workers):
    publish(redis_client, {"nodes": [
        {"id": "t", "type": "webhook"},
        {"id": "wait", "type": "delay", "config": {"seconds": 3}},
        {"id": "after", "type": "transform", "config": {"value": "{{trigger.payload.n}}"}},
    ]})
    pool = workers()
    first = pool.start()
    queued = queue_run(redis_client, {"n": 7})
    wait_for(lambda: load(redis_client, queued.id).status == RunStatus.WAITING, 30, "the run to park")
    pool.kill(first)  # no worker at all while the delay runs out
    time.sleep(3.5)
    assert load(redis_client, queued.id).status == RunStatus.WAITING

    pool.start()
    done = wait_for(lambda: (r := load(redis_client, queued.id)).is_terminal and r, 15, "the run to finish")
    assert done.status == RunStatus.SUCCESS
    assert {s.key: s for s in done.steps}["after"].output == 7


def test_a_parked_run_survives_restarting_redis_and_every_worker(tmp_path):
    """Everything stops while a run waits, Redis included (append-only file, as in dev and compose)."""
    server = RedisServer(data_dir=tmp_path / "redis").start()
    redis = Redis.from_url(server.url)
    try:
        publish(redis, {"nodes": [
            {"id": "t", "type": "webhook"},
            {"id": "wait", "type": "delay", "config": {"seconds": 3}},
            {"id": "after", "type": "transform", "config": {"value": "{{trigger.payload.n}}"}},
        ]})
        pool = Workers(redis, {})
        first = pool.start()
        queued = queue_run(redis, {"n": 11})
        wait_for(lambda: load(redis, queued.id).status == RunStatus.WAITING, 30, "the run to park")
        pool.kill(first)
        time.sleep(1.2)  # appendfsync everysec
        redis.close()
        server.stop()  # SIGTERM: Redis flushes its append-only file and exits

        time.sleep(2.5)  # nothing runs while the delay ends
        server = RedisServer(port=server.port, data_dir=tmp_path / "redis").start()
        redis = Redis.from_url(server.url)
        assert load(redis, queued.id).status == RunStatus.WAITING
        pool = Workers(redis, {})
        pool.start()
        try:
            done = wait_for(lambda: (r := load(redis, queued.id)).is_terminal and r, 15, "the run to finish")
        finally:
            pool.stop_all()
        assert done.status == RunStatus.SUCCESS
        assert {s.key: s for s in done.steps}["after"].output == 11
    finally:
        redis.close()
        server.stop()
