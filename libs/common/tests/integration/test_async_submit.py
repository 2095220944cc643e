"""The ingress's asyncio path sends exactly the commands `accept_run` sends, and RQ runs the job."""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest
from redis.asyncio import Redis as AsyncRedis

from automateos_common.queue import RUN_JOB, make_queue, new_run, submit_commands
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
