"""Several runs at once on one worker: slots, RQ's path alone, and warm shut-downs that finish the runs in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from services.engine.tests.factories import publish, queue_run, wait_for

from automateos_common.queue import make_queue
from automateos_common.runs import RunStatus, RunStore
from automateos_devstack.testing import EchoServer
from automateos_engine.worker import EngineQueue, EngineSimpleWorker

pytestmark = pytest.mark.integration




def _slow_workflow(redis_client, echo: EchoServer, seconds: float) -> None:
    publish(redis_client, {"nodes": [
        {"id": "t", "type": "webhook"},
        {"id": "call", "type": "http_request", "config": {"url": f"{echo.url}/sleep/{seconds}/slow", "method": "POST"}},
    ]})


def _worker(redis_client, concurrency: int) -> EngineSimpleWorker:
    queue = EngineQueue("test", connection=redis_client, serializer=JSONSerializer)
    return EngineSimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, queue_class=EngineQueue,
                              concurrency=concurrency)


def test_a_worker_with_four_slots_has_four_runs_in_flight_at_once(redis_client, engine_env):
    with EchoServer() as echo:
        _slow_workflow(redis_client, echo, 1)
        runs = [queue_run(redis_client, {"n": i}) for i in range(4)]
        worker = _worker(redis_client, 4)
        worker.work(burst=True)  # burst: it returns once the queue is empty and the runs in flight have ended
        starts = sorted(r["at"] for r in echo.requests if r["path"] == "/sleep/1/slow")
    assert len(starts) == 4
    assert starts[-1] - starts[0] < 0.9  # all four calls began while the first was still waiting
    for queued in runs:
        assert RunStore(redis_client).load(queued.id).status == RunStatus.SUCCESS
        job = Job.fetch(queued.id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.FINISHED
    stats = redis_client.hgetall(worker.key)
    assert int(stats[b"successful_job_count"]) == 4 and stats[b"state"] == b"idle"


def test_other_jobs_run_alone_on_a_worker_with_slots(redis_client, engine_env):
    queue = make_queue(redis_client, "test")
    job = queue.enqueue_call("operator.truth", args=(1,), result_ttl=60)
    _worker(redis_client, 3).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() is True


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_warm_shut_down_finishes_the_runs_in_flight(redis_client, concurrency):
    kw = redis_client.connection_pool.connection_kwargs
    env = {**os.environ, "REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}", "AUTOMATEOS_QUEUE_NAME": "test",
           "AUTOMATEOS_EGRESS_ALLOW": "127.0.0.1", "AUTOMATEOS_INTERNAL_TOKEN": "t", "AUTOMATEOS_LOG_LEVEL": "WARNING",
           "AUTOMATEOS_WORKER_CONCURRENCY": str(concurrency)}
    with EchoServer() as echo:
        _slow_workflow(redis_client, echo, 2)
        runs = [queue_run(redis_client, {"n": i}) for i in range(concurrency)]
        proc = subprocess.Popen([sys.executable, "-m", "automateos_engine", "worker"], env=env, start_new_session=True)
        try:
            wait_for(lambda: len([r for r in echo.requests if r["path"] == "/sleep/2/slow"]) == concurrency, 30,
                   "every run's slow call to begin")
            proc.send_signal(signal.SIGTERM)  # mid-call: a warm shut-down
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for queued in runs:  # finished by this worker, not left for recovery
        run = RunStore(redis_client).load(queued.id)
        assert run.status == RunStatus.SUCCESS and run.steps[1].attempts == 1, run.error_message


def test_an_idle_worker_with_slots_stops_at_once(redis_client):
    kw = redis_client.connection_pool.connection_kwargs
    env = {**os.environ, "REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}", "AUTOMATEOS_QUEUE_NAME": "test",
           "AUTOMATEOS_INTERNAL_TOKEN": "t", "AUTOMATEOS_LOG_LEVEL": "WARNING", "AUTOMATEOS_WORKER_CONCURRENCY": "4"}
    before = redis_client.scard("rq:workers")
    proc = subprocess.Popen([sys.executable, "-m", "automateos_engine", "worker"], env=env, start_new_session=True)
    try:
        wait_for(lambda: redis_client.scard("rq:workers") > before, 30, "the worker to register")
        time.sleep(0.5)  # blocked on the empty queue
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)  # (its status: 1, as any worker that ran no job)
        assert time.monotonic() - started < 5  # at once, not after the queue wait's full length
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
