"""The ingress's asyncio path sends exactly the commands `accept_run` sends, and RQ runs the job."""

from __future__ import annotations

import asyncio
import json
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis as AsyncRedis

from automateos_common.queue import JOB_TIMEOUT_S, RUN_JOB, JobTemplate, make_queue, new_run, submit_commands
from automateos_common.runs import EVENTS_STREAM, RunStatus, RunStore

pytestmark = pytest.mark.integration


def test_recorded_commands_replayed_on_asyncio_write_the_run_and_its_job(redis_client):
    queue = make_queue(redis_client, "async-test")
    data = {"payload": {"a": 1}, "headers": {}, "query": {}, "method": "POST"}
    run = new_run(workflow_id=3, owner_id=7, trigger="webhook", trigger_data=data)

    commands = submit_commands(redis_client, queue, run)
    assert RunStore(redis_client).load(run.id) is None  # recorded, not sent
    assert queue.count == 0

    async def send() -> None:
        kw = redis_client.connection_pool.connection_kwargs
        client = AsyncRedis(host=kw["host"], port=kw["port"], db=kw["db"])
        async with client.pipeline(transaction=True) as pipe:
            for args, options in commands:
                pipe.execute_command(*args, **options)
            await pipe.execute()
        await client.aclose()

    asyncio.run(send())

    stored = RunStore(redis_client).load(run.id)
    assert stored is not None and stored.status == RunStatus.QUEUED and stored.payload == {"a": 1}
    assert redis_client.xlen(EVENTS_STREAM) == 1
    assert queue.job_ids == [run.id]
    job_data = json.loads(zlib.decompress(redis_client.hget(f"rq:job:{run.id}", "data")))
    assert job_data == [RUN_JOB, None, [run.id], {}]
    assert redis_client.sismember("rq:queues", "rq:queue:async-test")


def _normalized(commands, stamp="T"):
    """Commands with the time fields set to one value and the job data decompressed, for comparing."""
    out = []
    for args, options in commands:
        args = list(args)
        if args[0] == "HSET":
            for i in range(2, len(args) - 1, 2):
                if args[i] in JobTemplate.NOW_FIELDS:
                    args[i + 1] = stamp
                elif args[i] == "data":
                    args[i + 1] = zlib.decompress(args[i + 1])
        out.append((tuple(a.value if hasattr(a, "value") else a for a in args), options))  # JobStatus: a str
    return out


def test_the_job_template_replays_exactly_what_rq_writes(redis_client):
    queue = make_queue(redis_client, "template-test")
    data = {"payload": {"a": 1}, "headers": {"x": "y"}, "query": {}, "method": "POST"}
    template = JobTemplate(queue)
    for _ in range(3):  # another id each time: nothing of the stand-in or of an earlier run is left
        run = new_run(workflow_id=3, owner_id=7, trigger="webhook", trigger_data=data)
        replayed = submit_commands(redis_client, queue, run, template)
        built = submit_commands(redis_client, queue, run)
        assert _normalized(replayed) == _normalized(built)
        assert JobTemplate.STAND_IN not in repr(replayed)


def test_a_job_written_from_the_template_is_the_job_rq_would_have_written(redis_client):
    from rq.job import Job

    queue = make_queue(redis_client, "template-fetch")
    data = {"payload": None, "headers": {}, "query": {}, "method": "GET"}
    run = new_run(workflow_id=1, owner_id=1, trigger="webhook", trigger_data=data)
    before = datetime.now(timezone.utc)
    with redis_client.pipeline(transaction=True) as pipe:
        for args, options in submit_commands(redis_client, queue, run, JobTemplate(queue)):
            pipe.execute_command(*args, **options)
        pipe.execute()
    job = Job.fetch(run.id, connection=redis_client, serializer=queue.serializer)
    assert (job.func_name, job.args, job.kwargs, job.origin) == (RUN_JOB, [run.id], {}, "template-fetch")
    assert job.get_status() == "queued" and job.retries_left == 3 and job.timeout == JOB_TIMEOUT_S
    assert before - timedelta(seconds=1) <= job.enqueued_at <= datetime.now(timezone.utc)
    assert before - timedelta(seconds=1) <= job.created_at <= datetime.now(timezone.utc)
    assert job.description == f"{RUN_JOB}('{run.id}')"
    assert queue.job_ids == [run.id]
