"""Accepting a run: its state and its RQ job are written to Redis in one MULTI/EXEC.

So a run is either fully accepted (state `queued`, event, job on the queue) or not at all, and
the caller answers 202 only after Redis has it. Jobs name their function by dotted string and
use RQ's JSON serializer: the producers (ingress, later the scheduler) never import engine code.
"""

from __future__ import annotations

import os
import threading
import time
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


_last_v7 = 0
_v7_lock = threading.Lock()


def new_execution_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort newest-last, strictly within a process.

    48 bits of Unix milliseconds, then 74 random bits; a second id in the same millisecond is
    the previous one plus one (RFC 9562, method 3). Python 3.14's uuid.uuid7() does the same.
    """
    global _last_v7
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> 6  # 74 bits
    with _v7_lock:
        candidate = (ms << 74) | rand
        if candidate <= _last_v7:
            candidate = _last_v7 + 1
        _last_v7 = candidate
    ms_part, rand_a, rand_b = candidate >> 74, (candidate >> 62) & 0xFFF, candidate & ((1 << 62) - 1)
    value = (ms_part << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


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
