"""Accepting a run: its state and its RQ job are written to Redis in one MULTI/EXEC.

So a run is either fully accepted (state `queued`, event, job on the queue) or not at all, and
the caller answers 202 only after Redis has it. Jobs name their function by dotted string and
use RQ's JSON serializer: the producers (ingress, later the scheduler) never import engine code.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from .runs import RunState, RunStore

RUN_JOB = "automateos_engine.jobs.run_execution"
# A run that outlives this is stopped by RQ; long waits belong to the engine's parking, not a job.
JOB_TIMEOUT_S = 900


def make_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def new_execution_id() -> str:
    return str(uuid.uuid4())


def accept_run(redis: Redis, queue: Queue, *, workflow_id: int, owner_id: int, trigger: str,
               trigger_data: dict[str, Any], execution_id: str | None = None) -> RunState:
    run = RunState(
        id=execution_id or new_execution_id(), workflow_id=workflow_id, owner_id=owner_id, trigger=trigger,
        payload=trigger_data.get("payload"), trigger_data=trigger_data,
    )
    with redis.pipeline(transaction=True) as pipe:
        pipe.multi()
        RunStore(redis).write_new(pipe, run)
        # Retry: if a worker dies with the job, RQ's maintenance puts it back; the engine resumes
        # the run from its first unfinished step.
        queue.enqueue_call(RUN_JOB, args=(run.id,), job_id=run.id, timeout=JOB_TIMEOUT_S,
                           result_ttl=0, failure_ttl=7 * 24 * 3600, retry=Retry(max=3), pipeline=pipe)
        pipe.execute()
    return run
