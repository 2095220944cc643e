"""One RQ worker process draining the AutomateOS queue.

RQ's scheduler (a process of its own per worker, for jobs enqueued at a time) is not started:
nothing here enqueues for later. Waits and retries park the run on the engine's own due times
(automateos_common.lease), and RQ's retries of a failed job (Retry(max=3), no interval) requeue
at once, without a scheduler."""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
import zlib
from typing import Any, ClassVar

from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import now, parse_timeout, utcformat
from rq.worker import WorkerStatus

from automateos_common import audit, catalog
from automateos_common.fastredis import CommandList, LeanRedis, RedisPyCommands
from automateos_common.lease import ACQUIRE_AND_READ_FN, DUE_KEY, LEASE_KEY, Leases
from automateos_common.logs import setup_logging
from automateos_common.nodes.registry import default_registry
from automateos_common.queue import RUN_JOB
from automateos_common.runs import RunStore

from . import jobs
from .executor import Executor, Runtime, Taken, lease_token
from .reaper import Reaper
from .settings import get_settings
from .threads import STEP_THREADS

log = logging.getLogger(__name__)

# RQ 3.0's worker loop sends its own heartbeat (HSET + 2 EXPIREs, one round trip each) before and
# after every dequeue and after every job, and reads the suspension flag before every job: about a
# dozen round trips a job, over half of what a short run costs. Once a second is plenty for both
# (the worker's key lives `worker_ttl` = 420 s; `rq suspend` is noticed within a second). The
# heartbeats RQ sends inside a pipeline with a job's own bookkeeping are left alone.
QUIET_S = 1.0


class _LessChatty:
    _beat_at = 0.0
    _suspension_checked_at = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and timeout is None:
            now = time.monotonic()
            if now - self._beat_at < QUIET_S:
                return
            self._beat_at = now
        super().heartbeat(timeout, pipeline)  # type: ignore[misc]

    def check_for_suspension(self, burst: bool) -> Any:
        now = time.monotonic()
        if now - self._suspension_checked_at < QUIET_S:
            return None
        self._suspension_checked_at = now
        return super().check_for_suspension(burst)  # type: ignore[misc]


# The next job and its hash in one round trip: RQ's non-blocking LMOVE into the intermediate list
# (the same move, so RQ's bookkeeping of jobs in flight is unchanged), then the job's HGETALL.
# KEYS: queue, intermediate list, due set. ARGV[1]: the job key prefix.
# With a picker (ARGV[2..12]: run key prefix, lease key prefix, token, lease ms, due time, catalog
# prefix, catalog ready key, started at, worker name, worker key or '', worker state), a run's job
# (a run hash with the job's id) is picked up in the same script: its lease taken and its run and
# workflow read (Leases.acquire_and_read), the job out of the intermediate list (the lease covers it
# from here) and marked started, the worker busy. Returns {id, job hash} or {id, job hash, pick-up}.
_TAKE = ACQUIRE_AND_READ_FN + """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
local job_key = ARGV[1] .. id
local job = redis.call('HGETALL', job_key)
if #ARGV == 1 or #job == 0 or redis.call('EXISTS', ARGV[2] .. id) == 0 then return {id, job} end
local taken = acquire_and_read(ARGV[3] .. id, KEYS[3], ARGV[2] .. id, ARGV[4], ARGV[5], ARGV[6], id, ARGV[7],
                               ARGV[8])
redis.call('LREM', KEYS[2], 1, id)
redis.call('HSET', job_key, 'status', 'started', 'started_at', ARGV[9], 'worker_name', ARGV[10])
if ARGV[11] ~= '' then redis.call('HSET', ARGV[11], 'state', ARGV[12]) end
return {id, job, taken}
"""


class PerJobLinesAtDebug(logging.Filter):
    """RQ logs each job it takes and each it finishes at INFO: hundreds of lines a second under load
    (~5 % of a short run's CPU), each run already recorded in its history. Those lines are logged
    when `rq.worker` is at DEBUG; every other line of RQ's is left alone."""

    FORMATS = frozenset({"Worker %s: %s: %s (%s)", "Worker %s: %s: %s"})

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno != logging.INFO or record.msg not in self.FORMATS
                or logging.getLogger(record.name).isEnabledFor(logging.DEBUG))


def _restore_run(job: Job, mapping: dict[bytes, bytes]) -> bool:
    """Restore a run's job with only what the lean path reads (its call, timeout, result TTL, origin,
    description, status); False, restoring nothing, for any other job. RQ's `restore` parses ~25 fields
    and four timestamps (strptime) per job, about as much CPU as a round trip; `full_restore` does it
    from the same hash when RQ's own code takes a job over (its failure handling)."""
    raw = mapping.get(b"data")
    if raw is None:
        return False
    try:
        job.data = zlib.decompress(raw)
    except zlib.error:
        job.data = raw
    try:
        if job.func_name != RUN_JOB:
            return False
    except Exception:  # unreadable call data: RQ's restore and its failure handling will say so
        return False
    text = {k.decode(): v.decode() for k, v in mapping.items() if k != b"data"}
    job.timeout = parse_timeout(text["timeout"]) if text.get("timeout") else None
    job.result_ttl = int(text["result_ttl"]) if text.get("result_ttl") else None
    job.failure_ttl = int(text["failure_ttl"]) if text.get("failure_ttl") else None
    job.origin = text.get("origin", "")
    job.description = text.get("description")
    job._status = JobStatus(text["status"]) if text.get("status") else JobStatus.CREATED
    job._aos_hash = mapping  # type: ignore[attr-defined]
    return True


def full_restore(job: Job) -> None:
    """The rest of a job `_restore_run` left out, from the hash it was dequeued with; the times and the
    worker the lean path set since are kept."""
    mapping = getattr(job, "_aos_hash", None)
    if mapping is None:
        return
    started, ended, worker_name = job.started_at, job.ended_at, job.worker_name
    job.restore(mapping)
    job.started_at, job.ended_at, job.worker_name = started, ended, worker_name
    del job._aos_hash  # type: ignore[attr-defined]


class EngineQueue(Queue):
    """RQ's Queue, with a dequeue that takes a waiting job and its hash in one round trip (RQ takes
    two: the move, then a fetch). An empty queue is waited on by RQ's own blocking dequeue.

    `lean`: the lean client for the connection's server (set by the worker), used for that round
    trip instead of redis-py. `pickers`: the engine worker dequeuing on a connection, which picks a
    run up in the dequeue's round trip (its first round trip of the run's own saved)."""

    lean: ClassVar[dict[int, LeanRedis | RedisPyCommands]] = {}  # id(connection) -> its lean client
    pickers: ClassVar[weakref.WeakValueDictionary[int, EngineSimpleWorker]] = weakref.WeakValueDictionary()

    @classmethod
    def dequeue_any(cls, queues: Any, timeout: int | None, connection: Redis, job_class: type[Job] | None = None,
                    serializer: Any = None, death_penalty_class: Any = None) -> tuple[Job, Queue] | None:
        queues = list(queues)
        if len(queues) == 1:
            queue, job_cls = queues[0], job_class or Job
            while True:
                picker = cls.pickers.get(id(connection))
                token, started = lease_token(), now()
                pickup, wrote_busy = picker.pickup_args(token, started) if picker is not None else ([], False)
                args = (_TAKE, 3, queue.key, queue.intermediate_queue_key, DUE_KEY,
                        job_cls.redis_job_namespace_prefix, *pickup)
                lean = cls.lean.get(id(connection))
                found: Any = lean.pipeline([("EVAL", *args)])[0] if lean is not None else connection.eval(*args)
                if not found:
                    break  # empty: block on RQ's own dequeue below
                job_id, flat = found[0].decode(), found[1]
                if not flat:
                    continue  # the job hash is gone (deleted meanwhile): take the next, as RQ does
                job = job_cls(job_id, connection=connection, serializer=serializer)
                mapping = dict(zip(flat[::2], flat[1::2], strict=True))
                is_run = _restore_run(job, mapping)
                if not is_run:
                    job.restore(mapping)
                if len(found) > 2 and picker is not None:
                    picker.picked_up(job, Taken(token, found[2]), started, is_run=is_run, wrote_busy=wrote_busy)
                return job, queue
        return super().dequeue_any(queues, timeout, connection=connection, job_class=job_class,
                                   serializer=serializer, death_penalty_class=death_penalty_class)


class EngineWorker(_LessChatty, Worker):
    """RQ's forking worker (a work-horse process per job), minus the per-job chatter."""


class EngineSimpleWorker(_LessChatty, SimpleWorker):
    """RQ's in-process worker, minus the per-job chatter, with a lean path for AutomateOS runs and
    up to `concurrency` runs at once.

    RQ's own path costs about a dozen round trips a job (an execution record, the started
    registry, heartbeats before and after, a WATCHed success transaction, a result, worker
    state twice), more than a short run's own work. A run needs none of it: the run's lease
    (automateos_common.lease) is what finds and recovers a run whose worker died, and the run
    state in Redis is its record. So a run job (`RUN_JOB`) takes this path instead:

    - at pick-up, in the run's own first round trip: the job leaves RQ's intermediate list and
      is marked started (status, started_at, worker name) on its hash, the worker busy;
    - the run;
    - success: with the run's last write (the one that gives its lease back), the job is marked
      finished, its hash left to expire after its `result_ttl`, counted in the worker's
      statistics, and the worker idle again when it was its last run in flight;
    - an exception: RQ's own failure handling (failed registry, retries), as for any job.

    Any other job goes through RQ's path unchanged, alone (the runs in flight finish first).

    Concurrency (`AUTOMATEOS_WORKER_CONCURRENCY`): with 1, a run executes on the worker's own
    thread under RQ's death penalty (the job's timeout, a backstop), as any RQ job. With more, each
    run executes on a thread of its own (the death penalty is a signal: main thread only; a run is
    bounded by its node and run timeouts) while the worker takes the next job, up to that many at a
    time: a run mostly waits (on Redis, on the APIs its nodes call), and the other runs use that
    time. Each thread has its own executor and Redis connection. The worker counts as busy while
    any run is in flight, so a warm shut-down (SIGTERM) stops taking jobs and waits for them all.
    """

    concurrency: int = 1
    _written_state: str | None = None

    def __init__(self, *args: Any, concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, concurrency)
        self._local = threading.local()  # per thread: its runtime (Redis, HTTP client) and executor
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lease_s: float | None = None
        EngineQueue.pickers[id(self.connection)] = self

    # -- state ---------------------------------------------------------------------------------

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if state == WorkerStatus.IDLE and self._inflight:
            state = WorkerStatus.BUSY  # RQ says idle before each dequeue; runs are still in flight
        if pipeline is None and state == self._written_state:
            self._state = state  # RQ writes "idle" before every dequeue: once is enough
            return
        self._written_state = state
        super().set_state(state, pipeline)

    def _begin(self, pipe: CommandList) -> None:
        with self._inflight_lock:
            self._inflight += 1
            if self._written_state != WorkerStatus.BUSY:
                self._written_state = WorkerStatus.BUSY
                pipe.hset(self.key, "state", WorkerStatus.BUSY)
            self._state = WorkerStatus.BUSY

    # -- pick-up in the dequeue (EngineQueue) ---------------------------------------------------

    def pickup_args(self, token: str, started: Any) -> tuple[list[Any], bool]:
        """The dequeue script's arguments that pick a run up with `token` (see _TAKE), and whether the
        script will mark the worker busy."""
        if self._lease_s is None:
            self._lease_s = get_settings().engine_config().lease_s
        lease_s = self._lease_s
        busy = self.key if self._written_state != WorkerStatus.BUSY else ""
        return [RunStore.key(""), LEASE_KEY.format(""), token, max(1, int(lease_s * 1000)), time.time() + lease_s,
                catalog.WF_KEY.format(""), catalog.READY_KEY, utcformat(started), self.name, busy,
                WorkerStatus.BUSY], bool(busy)

    def picked_up(self, job: Job, taken: Taken, started: Any, *, is_run: bool, wrote_busy: bool) -> None:
        """The dequeue took a run's lease (`taken`) and marked its job started (and the worker busy)."""
        if not is_run:  # a run's id on another kind of job: give the lease back, RQ's path runs it
            if taken.answers[0]:
                self._leases().release(job.id, taken.token, due_at=time.time())
            if wrote_busy:
                self._written_state = WorkerStatus.BUSY
            return
        job.started_at = started
        job.worker_name = self.name
        job._aos_taken = taken  # type: ignore[attr-defined]
        with self._inflight_lock:
            self._inflight += 1
            self._state = WorkerStatus.BUSY
            if self._written_state != WorkerStatus.BUSY:
                if not wrote_busy:  # another thread's run ended meanwhile and wrote "idle"
                    self._runtime_commands().pipeline([("HSET", self.key, "state", WorkerStatus.BUSY)])
                self._written_state = WorkerStatus.BUSY

    def _leases(self) -> Leases:
        return Leases(self.connection)

    def _runtime_commands(self) -> LeanRedis | RedisPyCommands:
        return EngineQueue.lean.get(id(self.connection)) or RedisPyCommands(self.connection)

    def _end(self, pipe: CommandList | None) -> None:
        with self._inflight_lock:
            self._inflight -= 1
            if not self._inflight:
                self._state = WorkerStatus.IDLE
                if pipe is not None:
                    self._written_state = WorkerStatus.IDLE
                    pipe.hset(self.key, "state", WorkerStatus.IDLE)
            self._inflight_lock.notify_all()

    def _wait_for_runs(self, *, below: int = 1) -> None:
        with self._inflight_lock:
            while self._inflight >= below:
                self._inflight_lock.wait(1.0)

    def teardown(self) -> None:
        self._wait_for_runs()  # a warm shut-down lets every run in flight finish
        super().teardown()  # type: ignore[no-untyped-call]

    def _shutdown(self) -> None:
        """Warm shut-down. One run at a time: as RQ (finish the run, then stop). Several: the worker's
        own thread only ever waits for a slot or for a job, so it stops taking jobs at once; the runs
        in flight finish in `teardown`."""
        if self.concurrency == 1:
            super()._shutdown()  # type: ignore[no-untyped-call]
            return
        self._stop_requested = True
        raise StopRequested()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        if self.concurrency == 1:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self._slots.acquire()  # a free slot before the next job: never more taken than can run
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._slots.release()
            raise
        if result is None:
            self._slots.release()
        return result

    # -- jobs ----------------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        if job.func_name != RUN_JOB or len(job.args) != 1:
            full_restore(job)
            try:
                self._wait_for_runs()  # RQ's own path, alone
                super().execute_job(job, queue)
            finally:
                if self.concurrency > 1:
                    self._slots.release()
            return
        if self.concurrency == 1:
            with self.death_penalty_class(job.timeout or queue.DEFAULT_TIMEOUT, JobTimeoutException, job_id=job.id):
                self._run(job, queue)
            return
        try:  # the slot was taken before the dequeue; the run's thread gives it back
            STEP_THREADS.submit(self._run_in_slot, job, queue)
        except BaseException:
            self._slots.release()
            raise

    def _run_in_slot(self, job: Job, queue: Queue) -> None:
        try:
            self._run(job, queue)
        finally:
            self._slots.release()

    def _executor(self) -> tuple[Runtime, Executor]:
        local = self._local
        if getattr(local, "executor", None) is None:
            local.runtime = jobs.build_runtime(self.connection)
            local.executor = Executor(local.runtime)  # one per thread: its leases' scripts are hashed once
        return local.runtime, local.executor

    def _run(self, job: Job, queue: Queue) -> None:
        runtime, executor = self._executor()
        taken: Taken | None = getattr(job, "_aos_taken", None)
        started = job.started_at if taken is not None and job.started_at is not None else now()
        job.started_at = started
        counted = taken is not None  # picked up in the dequeue: counted in flight there

        def pick_up(pipe: CommandList) -> None:
            nonlocal counted
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.hset(job.key, mapping={"status": JobStatus.STARTED, "started_at": utcformat(started),
                                        "worker_name": self.name})
            self._begin(pipe)
            counted = True

        finished = False

        def finish(pipe: CommandList) -> None:
            nonlocal finished
            finished = True
            job.ended_at = ended = now()
            ttl = job.get_result_ttl(self.default_result_ttl)
            if ttl == 0:
                pipe.delete(job.key)
            else:
                pipe.hset(job.key, mapping={"status": JobStatus.FINISHED, "ended_at": utcformat(ended)})
                if ttl is not None and ttl > 0:  # -1: kept for good, as RQ does
                    pipe.expire(job.key, ttl)
            # The worker's statistics, as RQ's increment_successful_job_count / increment_total_working_time.
            pipe.hincrby(self.key, "successful_job_count", 1)
            pipe.hincrbyfloat(self.key, "total_working_time", (ended - started).total_seconds())
            if counted:
                self._end(pipe)

        try:
            executor.execute(job.args[0], taken=taken, on_pickup=pick_up, on_release=finish)
        except Exception:
            if counted and not finished:
                self._end(None)
            full_restore(job)
            self._finalize_failure(job, queue, None, sys.exc_info())  # type: ignore[arg-type]  # RQ's handling
            return
        if not finished:  # the lease was never ours (another worker holds the run) or was lost
            pipe = CommandList()
            finish(pipe)
            runtime.commands.pipeline(pipe.commands)


def preload() -> None:
    """Import and build what a worker needs before it starts: the supervisor calls it before forking
    its workers, and a worker (or a forking worker's work-horses) starts warm."""
    default_registry()
    assert callable(jobs.run_execution)  # with jobs: the executor, the driver, the nodes' SDK


def run_worker(*, burst: bool = False) -> bool:
    settings = get_settings()
    setup_logging(settings.log_level)
    # Security events a node emits (credential.read, when credentials exist) carry service "engine".
    audit.configure(service="engine", redis_url=settings.redis_url, stream_maxlen=settings.audit_stream_maxlen)
    logging.getLogger("rq.worker").addFilter(PerJobLinesAtDebug())
    preload()
    registry = default_registry()
    redis = Redis.from_url(settings.redis_url)
    queue = EngineQueue(settings.queue_name, connection=redis, serializer=JSONSerializer)  # make_queue's, as ours
    worker: EngineSimpleWorker | EngineWorker
    if settings.worker_class == "simple":
        worker = EngineSimpleWorker([queue], connection=redis, serializer=JSONSerializer, queue_class=EngineQueue,
                                    concurrency=settings.worker_concurrency)
    else:  # a work-horse process per job: one at a time
        worker = EngineWorker([queue], connection=redis, serializer=JSONSerializer, queue_class=EngineQueue)
    EngineQueue.lean[id(redis)] = LeanRedis.for_client(redis)
    log.info("engine worker %s on queue %s, node types: %s", worker.name, settings.queue_name,
             ", ".join(registry.types()))
    reaper = Reaper(settings.redis_url, settings.queue_name, interval_s=settings.reaper_interval_s())
    if not burst:
        reaper.start()
    try:
        return worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
    finally:
        reaper.stop()
