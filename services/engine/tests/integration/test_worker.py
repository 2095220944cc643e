"""A job enqueued the way the ingress does it is run by a real RQ worker (JSON serializer, no pickle)."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import SimpleWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from services.engine.tests.factories import publish, queue_run

from automateos_common import catalog
from automateos_common.fastredis import LeanRedis
from automateos_common.lease import Leases
from automateos_common.queue import RESULT_TTL_S, make_queue, new_execution_id
from automateos_common.runs import RunState, RunStatus, RunStore
from automateos_devstack.testing import example_definition
from automateos_engine.executor import Executor
from automateos_engine.worker import EngineQueue, EngineSimpleWorker

pytestmark = pytest.mark.integration




def test_rq_worker_runs_the_queued_job_end_to_end(redis_client, echo_server, engine_env):
    publish(redis_client, example_definition(url=f"{echo_server.url}/data"))
    queued = queue_run(redis_client, {"via": "rq"})
    # RQ stores (function, instance, args, kwargs) zlib-compressed; with the JSON serializer, no pickle.
    data = json.loads(zlib.decompress(redis_client.hget(f"rq:job:{queued.id}", "data")))
    assert data == ["automateos_engine.jobs.run_execution", None, [queued.id], {}]

    worker = SimpleWorker([make_queue(redis_client, "test")], connection=redis_client, serializer=JSONSerializer)
    assert worker.work(burst=True) is True

    run = RunStore(redis_client).load(queued.id)
    assert run.status == RunStatus.SUCCESS
    assert run.steps[1].output["body"]["echo"] == {"via": "rq"}
    assert echo_server.requests[-1]["body"] == {"via": "rq"}


def _engine_worker(redis_client, name: str = "test") -> EngineSimpleWorker:
    queue = EngineQueue(name, connection=redis_client, serializer=JSONSerializer)
    return EngineSimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, queue_class=EngineQueue)


def test_the_engine_worker_runs_a_run_on_its_lean_path_and_keeps_rq_s_books(redis_client, echo_server, engine_env):
    publish(redis_client, example_definition(url=f"{echo_server.url}/data"))
    runs = [queue_run(redis_client, {"n": i}) for i in range(3)]
    worker = _engine_worker(redis_client)
    assert worker.work(burst=True) is True

    queue = make_queue(redis_client, "test")
    for queued in runs:
        run = RunStore(redis_client).load(queued.id)
        assert run.status == RunStatus.SUCCESS
        job = Job.fetch(queued.id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.FINISHED and job.worker_name == worker.name
        assert job.started_at is not None and job.ended_at is not None and job.ended_at >= job.started_at
        assert 0 < redis_client.ttl(job.key) <= RESULT_TTL_S  # left to expire, as RQ does with result_ttl
        assert not redis_client.exists(f"rq:results:{queued.id}")  # RQ's own path would have stored a result
    assert queue.count == 0 and redis_client.llen(queue.intermediate_queue_key) == 0
    assert StartedJobRegistry(queue=queue).count == 0 and FailedJobRegistry(queue=queue).count == 0
    stats = redis_client.hgetall(worker.key)
    assert int(stats[b"successful_job_count"]) == 3 and float(stats[b"total_working_time"]) > 0
    assert Leases(redis_client).holder(runs[0].id) is None  # the lease went back with the last write


def test_an_engine_failure_on_the_lean_path_gets_rq_s_own_failure_handling(redis_client, engine_env,
                                                                            monkeypatch):
    publish(redis_client, {"nodes": [{"id": "t", "type": "webhook"}]})
    queued = queue_run(redis_client, {})

    def broken(*args, **kwargs):
        raise RuntimeError("engine bug")

    monkeypatch.setattr(Executor, "_pick_up", broken)
    worker = _engine_worker(redis_client)
    worker.work(burst=True)

    job = Job.fetch(queued.id, connection=redis_client, serializer=JSONSerializer)
    # RQ's retries (Retry(max=3)) then its failed registry, with the traceback: as for any failing job.
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    assert queued.id in FailedJobRegistry(queue=make_queue(redis_client, "test"))
    assert "engine bug" in (job.latest_result().exc_string or "")
    assert int(redis_client.hget(worker.key, "failed_job_count")) == 4


def test_other_jobs_take_rq_s_own_path_on_the_engine_worker(redis_client, engine_env):
    queue = make_queue(redis_client, "test")
    job = queue.enqueue_call("operator.truth", args=(1,), result_ttl=60)
    _engine_worker(redis_client).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() is True


@pytest.mark.parametrize("client", ["redis-py", "lean"])
def test_the_one_trip_dequeue_skips_vanished_jobs_and_blocks_like_rq_when_empty(redis_client, engine_env, client,
                                                                                 monkeypatch):
    if client == "lean":
        monkeypatch.setattr(EngineQueue, "lean", {id(redis_client): LeanRedis.for_client(redis_client)})
    queue = EngineQueue("test", connection=redis_client, serializer=JSONSerializer)
    gone = queue.enqueue_call("operator.truth", args=(0,))
    kept = queue.enqueue_call("operator.truth", args=(2,))
    redis_client.delete(gone.key)
    job, got_queue = EngineQueue.dequeue_any([queue], None, connection=redis_client, serializer=JSONSerializer)
    assert job.id == kept.id and job.args == [2] and job.func_name == "operator.truth" and got_queue is queue
    assert redis_client.lrange(queue.intermediate_queue_key, 0, -1) == [gone.id.encode(), kept.id.encode()]
    assert EngineQueue.dequeue_any([queue], None, connection=redis_client) is None  # empty, not blocking
    with pytest.raises(DequeueTimeout):
        EngineQueue.dequeue_any([queue], 1, connection=redis_client)  # RQ's blocking wait, then its timeout


@pytest.mark.parametrize("client", ["redis-py", "lean"])
def test_the_engine_worker_picks_a_run_up_in_its_dequeue_round_trip(redis_client, echo_server, engine_env, client,
                                                                     monkeypatch):
    if client == "lean":
        monkeypatch.setattr(EngineQueue, "lean", {id(redis_client): LeanRedis.for_client(redis_client)})
    publish(redis_client, example_definition(url=f"{echo_server.url}/data"))
    queued = queue_run(redis_client, {"n": 1})
    worker = _engine_worker(redis_client)
    queue = worker.queues[0]
    job, _ = EngineQueue.dequeue_any([queue], None, connection=redis_client, serializer=JSONSerializer)

    # Taken in the dequeue's script: the lease is the worker's, the job out of RQ's intermediate list (the
    # lease covers it now) and started by this worker, the worker busy; the run itself not touched yet.
    taken = job._aos_taken
    assert taken.answers[0] == 1 and Leases(redis_client).holder(queued.id) == taken.token
    assert redis_client.llen(queue.intermediate_queue_key) == 0
    stored = redis_client.hgetall(job.key)
    assert stored[b"status"] == b"started" and stored[b"worker_name"] == worker.name.encode()
    assert redis_client.hget(worker.key, "state") == b"busy"
    assert RunStore(redis_client).load(queued.id).status == RunStatus.QUEUED

    worker.execute_job(job, queue)  # no second pick-up: the run goes on from what the dequeue read
    assert RunStore(redis_client).load(queued.id).status == RunStatus.SUCCESS
    assert Leases(redis_client).holder(queued.id) is None
    assert Job.fetch(queued.id, connection=redis_client, serializer=JSONSerializer).get_status() == JobStatus.FINISHED
    assert redis_client.hget(worker.key, "state") == b"idle"


def test_a_run_held_by_another_worker_is_left_to_it_by_the_dequeue(redis_client, engine_env):
    publish(redis_client, {"nodes": [{"id": "t", "type": "webhook"}]})
    queued = queue_run(redis_client, {})
    assert Leases(redis_client).acquire(queued.id, "other-worker", 30)
    assert _engine_worker(redis_client).work(burst=True) is True
    assert Leases(redis_client).holder(queued.id) == "other-worker"  # not ours to give back
    assert RunStore(redis_client).load(queued.id).status == RunStatus.QUEUED  # nor to run
    job = Job.fetch(queued.id, connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED  # the duplicate job is done with


def test_another_kind_of_job_with_a_run_s_id_gets_the_lease_back_and_rq_s_path(redis_client, engine_env):
    run = RunState(id=new_execution_id(), workflow_id=1, owner_id=7, trigger="webhook", payload={},
                   trigger_data={})
    with redis_client.pipeline() as pipe:
        RunStore(redis_client).write_new(pipe, run)
        pipe.execute()
    job = make_queue(redis_client, "test").enqueue_call("operator.truth", args=(1,), job_id=run.id, result_ttl=60)
    _engine_worker(redis_client).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() is True
    assert Leases(redis_client).holder(run.id) is None
    assert Leases(redis_client).due_at(run.id) is not None  # due at once: whoever owns the run looks again


def test_the_pick_up_script_reads_the_run_and_its_workflow_only_when_it_takes_the_lease(redis_client):
    publish(redis_client, {"nodes": [{"id": "t", "type": "webhook"}]}, workflow_id=1, version=4)
    queued = queue_run(redis_client, {})
    leases, key = Leases(redis_client), RunStore.key(queued.id)

    def pick_up(token: str):
        return leases.acquire_and_read(queued.id, token, 30, run_key=key, catalog_prefix=catalog.WF_KEY.format(""),
                                       ready_key=catalog.READY_KEY)

    acquired, run_flat, entry_flat, ready = pick_up("w1")
    assert acquired == 1 and ready == 1
    run = RunStore.decode(dict(zip(run_flat[::2], run_flat[1::2], strict=True)))
    entry = catalog.entry_from_hash(1, dict(zip(entry_flat[::2], entry_flat[1::2], strict=True)))
    assert run.id == queued.id and entry.version == 4 and entry.definition["nodes"][0]["id"] == "t"
    assert pick_up("w2")[0] == 0 and pick_up("w2")[2] == []  # held: the run is read, the workflow is not
    leases.release(queued.id, "w1", due_at=None)
    redis_client.hset(key, "definition", b"{}")  # a pinned run does not need its workflow
    acquired, _, entry_flat, _ = pick_up("w3")
    assert acquired == 1 and entry_flat == []
