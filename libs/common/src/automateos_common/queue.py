"""Accepting a run: its state and its RQ job are written to Redis in one MULTI/EXEC.

So a run is either fully accepted (state `queued`, event, job on the queue) or not at all, and
the caller answers 202 only after Redis has it. Jobs name their function by dotted string and
use RQ's JSON serializer: the producers (ingress, the workflows API's replay and resume, later
the scheduler) never import engine code. Every job for a run goes through `enqueue_run`, so
they all carry the same function, serializer and options.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from .fastredis import CommandList
from .runs import RunState, RunStore

RUN_JOB = "automateos_engine.jobs.run_execution"
# RQ's own limit on one job, a backstop only: a run is bounded by its node timeouts and its own
# `settings.timeout_s`, and long waits park the run instead of holding a job.
JOB_TIMEOUT_S = 24 * 3600
FAILURE_TTL_S = 7 * 24 * 3600
# A finished job is kept this long: cheaper for RQ than deleting it at once (the run itself is ours, not RQ's).
RESULT_TTL_S = 10


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
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without its checks (half the cost)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def zlib_stored(data: bytes) -> bytes:
    """`zlib.compress(data, 0)`: a zlib stream of one stored (uncompressed) block, built directly.

    RQ keeps a job's call data zlib-compressed and inflates it when it reads the job. Setting up a
    deflate stream costs ~25-130 µs on this machine (zlib allocates and clears its window), about a
    tenth of everything else a webhook costs the ingress, for ~100 bytes that do not shrink; the same
    bytes built here cost ~1 µs, and any zlib reader (RQ's `zlib.decompress`) reads them."""
    if len(data) > 4096:
        return zlib.compress(data, 0)  # zlib may cut a longer one into several blocks: leave it to zlib
    size = len(data)
    return b"\x78\x01\x01" + struct.pack("<HH", size, size ^ 0xFFFF) + data + struct.pack(">I", zlib.adler32(data))


def enqueue_run(queue: Queue, run_id: str, *, job_id: str | None = None, at_front: bool = False,
                pipeline: Pipeline | None = None) -> Job:
    """Put a job for the run on the queue. The first job's id is the run id; a later one (a resume)
    needs an id of its own, since RQ keeps one job per id ([A-Za-z0-9_-]+)."""
    # Retry: if a worker dies with the job, RQ's maintenance puts it back; the engine resumes
    # the run from its first unfinished step.
    return queue.enqueue_call(RUN_JOB, args=(run_id,), job_id=job_id or run_id, timeout=JOB_TIMEOUT_S,
                              result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S, retry=Retry(max=3), at_front=at_front,
                              pipeline=pipeline)


def submit_run(redis: Redis, queue: Queue, run: RunState) -> RunState:
    """Write a prebuilt queued run (with any steps it already has) and its job in one MULTI/EXEC."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.multi()
        RunStore(redis).write_new(pipe, run)
        enqueue_run(queue, run.id, pipeline=pipe)
        pipe.execute()
    return run


def new_run(*, workflow_id: int, owner_id: int, trigger: str, trigger_data: dict[str, Any],
            execution_id: str | None = None, notify: bool = False) -> RunState:
    """`notify`: the run's end is announced (runs.DONE_CHANNEL), for a caller that waits for it."""
    return RunState(
        id=execution_id or new_execution_id(), workflow_id=workflow_id, owner_id=owner_id, trigger=trigger,
        payload=trigger_data.get("payload"), trigger_data=trigger_data, notify=notify,
    )


Command = tuple[tuple[Any, ...], dict[str, Any]]  # (args, options) as in a redis-py pipeline's command stack


def submit_commands(redis: Redis, queue: Queue, run: RunState, jobs: JobTemplate | None = None) -> list[Command]:
    """The commands `submit_run` sends, recorded instead of sent: for a client of another kind (asyncio)
    to send in its own MULTI/EXEC. With `jobs`, the job's part is RQ's recorded once (JobTemplate);
    without, RQ builds it now. Nothing here talks to Redis (but RQ's first call asks its version)."""
    if jobs is not None:
        writes = CommandList()
        RunStore(redis).write_new(writes, run)
        return [*((args, {}) for args in writes.commands), *jobs.commands(run.id)]
    pipe = redis.pipeline(transaction=True)
    pipe.multi()  # as in submit_run: RQ starts its own MULTI unless one is open
    RunStore(redis).write_new(pipe, run)
    enqueue_run(queue, run.id, pipeline=pipe)
    return [(tuple(args), dict(options)) for args, options in pipe.command_stack]


class JobTemplate:
    """The commands RQ sends to enqueue a run's job (`enqueue_run`), recorded once for a stand-in id
    and replayed for each run with its id and the time: what RQ would write, without building a Job
    per webhook (RQ's `enqueue_call` costs more than the rest of the ingress's work together).

    Replaying substitutes the id wherever it appears (keys, description, the job's compressed call
    data) and sets `created_at`/`enqueued_at` to now, as RQ does; `test_queue` holds the result to
    RQ's own commands, so an RQ upgrade that writes something else fails there, not in production.
    """

    STAND_IN = "00000000-0000-7000-8000-000000000000"
    NOW_FIELDS = frozenset({"created_at", "enqueued_at"})

    def __init__(self, queue: Queue) -> None:
        pipe = queue.connection.pipeline(transaction=True)
        pipe.multi()
        enqueue_run(queue, self.STAND_IN, pipeline=pipe)
        self.template: list[Command] = [(tuple(args), dict(opts)) for args, opts in pipe.command_stack]
        if not any(self.STAND_IN in str(args) for args, _ in self.template):
            raise RuntimeError("RQ's enqueue commands do not name the job id: cannot replay them")
        # Per command: its arguments, and where they change per job (position, how), worked out once.
        self._plan: list[tuple[tuple[Any, ...], dict[str, Any], list[tuple[int, str, Any]]]] = []
        for args, opts in self.template:
            changes: list[tuple[int, str, Any]] = []
            for i, value in enumerate(args):
                name = args[i - 1] if args[0] == "HSET" and i >= 3 and i % 2 == 1 else None
                if name in self.NOW_FIELDS:
                    changes.append((i, "now", None))
                elif name == "data" and isinstance(value, bytes):
                    changes.append((i, "data", zlib.decompress(value).split(self.STAND_IN.encode())))
                elif isinstance(value, str) and self.STAND_IN in value:
                    changes.append((i, "id", value.split(self.STAND_IN)))
            self._plan.append((args, opts, changes))

    def commands(self, job_id: str, now: datetime | None = None) -> list[Command]:
        stamp = utcformat(now or datetime.now(timezone.utc))
        raw_id, out = job_id.encode(), []
        for args, opts, changes in self._plan:
            if not changes:
                out.append((args, opts))
                continue
            new = list(args)
            for i, how, parts in changes:
                if how == "now":
                    new[i] = stamp
                elif how == "data":
                    new[i] = zlib_stored(raw_id.join(parts))
                else:
                    new[i] = job_id.join(parts)
            out.append((tuple(new), opts))
        return out


def accept_run(redis: Redis, queue: Queue, *, workflow_id: int, owner_id: int, trigger: str,
               trigger_data: dict[str, Any], execution_id: str | None = None) -> RunState:
    run = new_run(workflow_id=workflow_id, owner_id=owner_id, trigger=trigger, trigger_data=trigger_data,
                  execution_id=execution_id)
    return submit_run(redis, queue, run)
