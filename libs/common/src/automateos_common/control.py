"""Cancel, pause and resume a run: who may change it, and how a request reaches a busy worker.

A run is changed only by whoever holds its lease (lease.py). The API first tries to take the
lease for a moment itself:

    got it     no worker is executing the run: load it, apply the change, write it (one MULTI:
               the state, its `rev`, the recorder's event, `control` cleared), give the lease back
               with the right due time (cancel/pause: nothing is due; otherwise what was due before)
    taken      a worker is executing the run: HSET `control` = "cancel" | "pause" on the run's hash;
               the worker applies it between steps (within about a second) and clears it. The API
               then tries the lease once more (the worker may have just let the run go) and applies
               the change itself if it can.

A paused run holds no worker, so a request for one (`resume`, or `cancel`) is never left in
`control`: if the lease is taken, a worker is just letting go of the run it paused, and the API
tries again for up to a second. `resume` (paused -> queued) puts a new job on the queue, at the
front; the engine decides on pick-up whether the run must still wait (a parked delay not yet due).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue

from .errors import ConflictError, NotFoundError
from .jsonutil import utcnow
from .lease import Leases
from .queue import enqueue_run
from .runs import RunState, RunStatus, RunStore, StepState, StepStatus

CONTROL_FIELD = "control"
CANCEL = "cancel"
PAUSE = "pause"
RESUME = "resume"  # never left in `control`: a paused run has no worker to ask
CANCELLED_MESSAGE = "cancelled by its owner"

# What each request applies to, as data (runs.py holds the transitions themselves).
CANCELLABLE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED})
PAUSABLE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING})
CANCELLED_STEPS = frozenset({StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING})
TARGET = {CANCEL: RunStatus.CANCELLED, PAUSE: RunStatus.PAUSED, RESUME: RunStatus.QUEUED}

# Sets `control` unless a cancel is already waiting there: a pause must never replace a cancel.
# KEYS[1] run hash; ARGV[1] the request. Returns the request that is now pending, or nil when the
# run is gone.
_REQUEST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local current = redis.call('HGET', KEYS[1], 'control')
if current == 'cancel' then return current end
redis.call('HSET', KEYS[1], 'control', ARGV[1])
return ARGV[1]
"""


@dataclass(frozen=True)
class ControlOutcome:
    """The run after the request; `applied` False: a worker holds the run and will apply it (202)."""

    run: RunState
    applied: bool


def cancel_run(run: RunState) -> list[StepState]:
    """Cancel the run in place; returns the steps it changed. The caller checked `check`."""
    now = utcnow()
    run.set_status(RunStatus.CANCELLED)
    run.error_message = CANCELLED_MESSAGE
    run.started_at = run.started_at or now
    run.completed_at = now
    run.resume_at = None
    changed = []
    for step in run.steps:
        if step.status in CANCELLED_STEPS:
            step.set_status(StepStatus.CANCELLED)
            step.resume_at = None
            step.completed_at = step.completed_at or now
            changed.append(step)
    return changed


def check(run: RunState, action: str) -> None:
    """Raise ConflictError (409) when `action` does not apply to the run as it is now."""
    if action == RESUME:
        if run.status != RunStatus.PAUSED:
            raise ConflictError("only a paused execution can be resumed")
        return
    allowed = CANCELLABLE if action == CANCEL else PAUSABLE
    if run.status not in allowed:
        raise ConflictError(f"execution is already {run.status.value}")


def apply(run: RunState, action: str) -> list[StepState]:
    """Apply a checked action in place; returns the steps it changed."""
    check(run, action)
    if action == CANCEL:
        return cancel_run(run)
    # pause: a waiting run keeps resume_at, the engine honours it on resume; steps stay as they are.
    # resume: queued again; the engine continues the run from its first unfinished step.
    run.set_status(RunStatus.PAUSED if action == PAUSE else RunStatus.QUEUED)
    return []


class RunControl:
    """cancel / pause / resume for the API; each returns the run after it and whether it was applied."""

    def __init__(self, redis: Redis, queue: Queue, *, lease_ttl_s: float = 5.0, paused_wait_s: float = 1.0) -> None:
        self.redis = redis
        self.queue = queue
        self.store = RunStore(redis)
        self.leases = Leases(redis)
        self.lease_ttl_s = lease_ttl_s
        self.paused_wait_s = paused_wait_s
        self._request = redis.register_script(_REQUEST)

    def cancel(self, run_id: str) -> ControlOutcome:
        """queued | running | waiting | paused -> cancelled; its unfinished steps are cancelled too."""
        return self._request_or_apply(run_id, CANCEL)

    def pause(self, run_id: str) -> ControlOutcome:
        """queued | running | waiting -> paused, between steps; steps are left as they are."""
        return self._request_or_apply(run_id, PAUSE)

    def resume(self, run_id: str) -> ControlOutcome:
        """paused -> queued, with a new job at the front of the queue."""
        return self._request_or_apply(run_id, RESUME)

    def _load(self, run_id: str) -> RunState:
        run = self.store.load(run_id)
        if run is None:
            raise NotFoundError("Execution not found")
        return run

    def _request_or_apply(self, run_id: str, action: str) -> ControlOutcome:
        deadline = time.monotonic() + self.paused_wait_s
        while True:
            outcome = self._try_apply(run_id, action)
            if outcome is not None:
                return outcome
            run = self._load(run_id)
            check(run, action)  # refuse what cannot apply before asking a worker
            if run.status != RunStatus.PAUSED:
                break
            # A paused run holds no worker: one still holds it only while letting go of a run it
            # has just paused, which takes a moment. It will not look at a request any more.
            if time.monotonic() >= deadline:
                raise ConflictError("a worker is still pausing the execution; retry shortly")
            time.sleep(0.05)
        pending: Any = self._request(keys=[self.store.key(run_id)], args=[action])
        if pending is None:
            raise NotFoundError("Execution not found")
        if (pending.decode() if isinstance(pending, bytes) else pending) != action:
            raise ConflictError("a cancel of this execution is already pending")
        # The worker may have let the run go between our two attempts: then it is ours to change.
        outcome = self._try_apply(run_id, action, requested=True)
        if outcome is not None:
            return outcome
        return ControlOutcome(self._load(run_id), applied=False)

    def _try_apply(self, run_id: str, action: str, *, requested: bool = False) -> ControlOutcome | None:
        """Apply `action` while holding the run's lease; None when a worker holds it.

        `requested`: we have left the request in `control`, so a worker may have applied it already.
        """
        due_before = self.leases.due_at(run_id)  # acquire overwrites the due score with the lease's end
        token = f"api:{uuid.uuid4()}"
        if not self.leases.acquire(run_id, token, ttl_s=self.lease_ttl_s):
            return None
        run: RunState | None = None
        try:
            run = self._load(run_id)
            return self._apply_held(run, action, requested=requested)
        finally:
            # Cancelled, paused or finished: nothing is due; otherwise what was due before we came.
            done = run is None or run.is_terminal or run.status == RunStatus.PAUSED
            self.leases.release(run_id, token, due_at=None if done else due_before)

    def _apply_held(self, run: RunState, action: str, *, requested: bool) -> ControlOutcome:
        key = self.store.key(run.id)
        changed: dict[str, StepState] = {}
        dirty = False
        pending = run.control
        # A request a worker accepted but never applied (it died holding the run) is applied first:
        # a 202 promised it. A cancel wins over anything asked after it.
        if pending in (CANCEL, PAUSE) and pending != action:
            try:
                changed.update((s.key, s) for s in apply(run, pending))
                dirty = True
            except ConflictError:
                pass
        error: ConflictError | None = None
        if requested and run.status == TARGET[action]:
            pass  # the worker applied our request between our two attempts
        else:
            try:
                changed.update((s.key, s) for s in apply(run, action))
                dirty = True
            except ConflictError as exc:
                error = exc
        if dirty:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                self.store.write(pipe, run, steps=list(changed.values()))
                pipe.hdel(key, CONTROL_FIELD)
                if run.status == RunStatus.QUEUED:  # resumed
                    # The first job's id is the run id; each resume's is its own (rev only grows).
                    enqueue_run(self.queue, run.id, job_id=f"{run.id}-resume-{run.rev}", at_front=True,
                                pipeline=pipe)
                pipe.execute()
            run.rev += 1
        elif pending is not None:
            self.redis.hdel(key, CONTROL_FIELD)  # whatever it asked for cannot apply any more
        run.control = None
        if error is not None:
            raise error
        return ControlOutcome(run, applied=True)
