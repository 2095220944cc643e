"""Cancel, pause and resume on real Redis: applied under the run's lease, or left for its worker."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from rq.job import Job

from automateos_common.control import CANCELLED_MESSAGE, RunControl
from automateos_common.errors import ConflictError, NotFoundError
from automateos_common.jsonutil import utcnow
from automateos_common.lease import DUE_KEY, Leases, lease_key
from automateos_common.queue import JOB_TIMEOUT_S, RUN_JOB, accept_run, enqueue_run, make_queue, submit_run
from automateos_common.runs import EVENTS_STREAM, RunState, RunStatus, RunStore, StepState, StepStatus

pytestmark = pytest.mark.integration

QUEUE = "control-test"
S = StepStatus


def trigger_data(payload: Any = None) -> dict[str, Any]:
    return {"payload": payload, "headers": {}, "query": {}, "method": "POST"}


def put_run(redis, status: RunStatus = RunStatus.QUEUED, steps: list[StepState] | None = None,
            **fields: Any) -> RunState:
    """A run written straight to Redis in the state the test needs; no job, no worker."""
    run = RunState(id=f"run-{time.time_ns()}", workflow_id=1, owner_id=7, trigger="webhook", payload={"p": 1},
                   trigger_data=trigger_data({"p": 1}), status=status, steps=steps or [], **fields)
    if status != RunStatus.QUEUED:
        run.started_at = utcnow() - timedelta(seconds=3)
    with redis.pipeline() as pipe:
        RunStore(redis).write_new(pipe, run)
        pipe.execute()
    return run


def step(node_id: str, position: int, status: StepStatus, **fields: Any) -> StepState:
    return StepState(node_id=node_id, type="http_request", position=position, status=status, **fields)


@pytest.fixture
def control(redis_client) -> RunControl:
    return RunControl(redis_client, make_queue(redis_client, QUEUE), paused_wait_s=0.2)


def events(redis) -> int:
    return int(redis.xlen(EVENTS_STREAM))


def test_cancel_applies_at_once_when_no_worker_holds_the_run(redis_client, control):
    later = utcnow() + timedelta(hours=1)
    run = put_run(redis_client, RunStatus.WAITING, resume_at=later, steps=[
        step("t", 0, S.SUCCESS, output={"x": 1}),
        step("wait", 1, S.WAITING, resume_at=later),
        step("a", 2, S.PENDING),
        step("b", 3, S.SKIPPED),
    ])
    Leases.set_due(redis_client, run.id, later.timestamp())
    before = events(redis_client)

    outcome = control.cancel(run.id)

    assert outcome.applied is True
    stored = RunStore(redis_client).load(run.id)
    assert stored.to_public() == outcome.run.to_public()
    assert stored.status == RunStatus.CANCELLED
    assert stored.error_message == CANCELLED_MESSAGE == "cancelled by its owner"
    assert stored.completed_at is not None
    assert stored.to_public()["started_at"] == run.to_public()["started_at"]  # kept
    assert stored.resume_at is None
    assert [(s.key, s.status) for s in stored.steps] == [("t", S.SUCCESS), ("wait", S.CANCELLED),
                                                         ("a", S.CANCELLED), ("b", S.SKIPPED)]
    assert stored.steps[0].output == {"x": 1}
    assert stored.rev == outcome.run.rev == 2  # write_new, then the cancel
    assert events(redis_client) == before + 1  # the recorder hears of it
    # Nothing is due any more and the lease is given back.
    assert redis_client.zscore(DUE_KEY, run.id) is None
    assert redis_client.exists(lease_key(run.id)) == 0


def test_cancel_of_a_queued_run_sets_its_start_time_too(redis_client, control):
    run = put_run(redis_client)
    outcome = control.cancel(run.id)
    assert (outcome.applied, outcome.run.status) == (True, RunStatus.CANCELLED)
    assert outcome.run.started_at == outcome.run.completed_at is not None
    assert outcome.run.duration_ms == 0


def test_cancel_of_a_paused_run(redis_client, control):
    run = put_run(redis_client, RunStatus.PAUSED, steps=[step("t", 0, S.SUCCESS), step("a", 1, S.PENDING)])
    outcome = control.cancel(run.id)
    assert outcome.run.status == RunStatus.CANCELLED
    assert [s.status for s in outcome.run.steps] == [S.SUCCESS, S.CANCELLED]


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING])
def test_pause_applies_at_once_and_leaves_the_steps_alone(redis_client, control, status):
    later = utcnow() + timedelta(minutes=5)
    steps = [step("t", 0, S.SUCCESS), step("a", 1, S.WAITING, resume_at=later)]
    run = put_run(redis_client, status, steps=steps, resume_at=later if status == RunStatus.WAITING else None)
    Leases.set_due(redis_client, run.id, later.timestamp())

    outcome = control.pause(run.id)

    assert outcome.applied is True
    stored = RunStore(redis_client).load(run.id)
    assert stored.status == RunStatus.PAUSED
    assert [s.status for s in stored.steps] == [S.SUCCESS, S.WAITING]
    # A waiting run keeps its resume_at: resuming it before then continues the wait.
    assert (stored.resume_at is not None) is (status == RunStatus.WAITING)
    assert redis_client.zscore(DUE_KEY, run.id) is None  # a paused run needs no worker
    assert redis_client.exists(lease_key(run.id)) == 0


def test_resume_queues_a_new_job_at_the_front(redis_client, control):
    queue = make_queue(redis_client, QUEUE)
    other = accept_run(redis_client, queue, workflow_id=1, owner_id=7, trigger="webhook",
                       trigger_data=trigger_data())
    run = put_run(redis_client, RunStatus.PAUSED, steps=[step("t", 0, S.SUCCESS), step("a", 1, S.PENDING)])

    outcome = control.resume(run.id)

    assert outcome.applied is True
    assert outcome.run.status == RunStatus.QUEUED
    assert RunStore(redis_client).load(run.id).status == RunStatus.QUEUED
    job_id = f"{run.id}-resume-1"  # the rev it was resumed at: unique, as rev only grows
    assert queue.job_ids == [job_id, other.id]  # ahead of runs that are only starting
    job = Job.fetch(job_id, connection=redis_client, serializer=queue.serializer)
    assert (job.func_name, list(job.args), job.timeout) == (RUN_JOB, [run.id], JOB_TIMEOUT_S)
    assert job.retries_left == 3

    # Paused and resumed again: another job of its own.
    control.pause(run.id)
    control.resume(run.id)
    assert len(queue.job_ids) == 3
    assert len(set(queue.job_ids)) == 3


@pytest.mark.parametrize(("action", "status", "message"), [
    ("cancel", RunStatus.SUCCESS, "execution is already success"),
    ("cancel", RunStatus.FAILED, "execution is already failed"),
    ("cancel", RunStatus.CANCELLED, "execution is already cancelled"),
    ("pause", RunStatus.PAUSED, "execution is already paused"),
    ("pause", RunStatus.SUCCESS, "execution is already success"),
    ("resume", RunStatus.QUEUED, "only a paused execution can be resumed"),
    ("resume", RunStatus.RUNNING, "only a paused execution can be resumed"),
    ("resume", RunStatus.WAITING, "only a paused execution can be resumed"),
    ("resume", RunStatus.CANCELLED, "only a paused execution can be resumed"),
])
def test_requests_that_do_not_apply_are_conflicts_and_change_nothing(redis_client, control, action, status,
                                                                        message):
    run = put_run(redis_client, status)
    due = time.time() + 100
    Leases.set_due(redis_client, run.id, due)
    rev = RunStore(redis_client).load(run.id).rev

    with pytest.raises(ConflictError) as excinfo:
        getattr(control, action)(run.id)

    assert excinfo.value.message == message
    assert excinfo.value.status_code == 409
    stored = RunStore(redis_client).load(run.id)
    assert (stored.status, stored.rev) == (status, rev)
    assert redis_client.exists(lease_key(run.id)) == 0
    # What was due before stays due (acquiring moved it to the lease's end), unless nothing can be.
    expected = None if stored.is_terminal or status == RunStatus.PAUSED else pytest.approx(due)
    assert redis_client.zscore(DUE_KEY, run.id) == expected


def test_unknown_run_is_not_found(control):
    for action in ("cancel", "pause", "resume"):
        with pytest.raises(NotFoundError):
            getattr(control, action)("no-such-run")


def test_a_busy_worker_is_asked_through_the_control_field(redis_client, control):
    run = put_run(redis_client, RunStatus.RUNNING, steps=[step("t", 0, S.SUCCESS), step("a", 1, S.RUNNING)])
    Leases(redis_client).acquire(run.id, "worker-x", 30)

    outcome = control.pause(run.id)

    assert outcome.applied is False
    assert outcome.run.status == RunStatus.RUNNING  # the worker pauses it between steps
    assert outcome.run.control == "pause"
    assert outcome.run.to_public()["pending_action"] == "pause"
    assert redis_client.hget(RunStore.key(run.id), "control") == b"pause"
    assert Leases(redis_client).holder(run.id) == "worker-x"  # untouched

    # A cancel replaces a pending pause; a pause never replaces a pending cancel.
    assert control.cancel(run.id).run.control == "cancel"
    with pytest.raises(ConflictError, match="a cancel of this execution is already pending"):
        control.pause(run.id)
    assert redis_client.hget(RunStore.key(run.id), "control") == b"cancel"
    # What cannot apply is refused even while the worker holds the run.
    with pytest.raises(ConflictError, match="only a paused execution can be resumed"):
        control.resume(run.id)


def test_a_request_left_by_a_worker_that_died_is_applied_by_the_next_holder(redis_client, control):
    run = put_run(redis_client, RunStatus.RUNNING, steps=[step("a", 0, S.RUNNING)])
    leases = Leases(redis_client)
    leases.acquire(run.id, "worker-x", 30)
    assert control.cancel(run.id).applied is False
    leases.release(run.id, "worker-x", due_at=time.time())  # it let go without applying it

    # The owner asks for a pause now: the cancel that was promised comes first.
    with pytest.raises(ConflictError, match="execution is already cancelled"):
        control.pause(run.id)
    stored = RunStore(redis_client).load(run.id)
    assert (stored.status, stored.control, stored.steps[0].status) == (RunStatus.CANCELLED, None, S.CANCELLED)
    assert redis_client.zscore(DUE_KEY, run.id) is None


def test_the_lease_is_tried_again_after_asking(redis_client, control, monkeypatch):
    """The worker lets the run go right after our first attempt: the API applies the request itself."""
    run = put_run(redis_client, RunStatus.RUNNING)
    leases = Leases(redis_client)
    leases.acquire(run.id, "worker-x", 30)
    original = control._request

    def request_then_worker_lets_go(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        leases.release(run.id, "worker-x", due_at=time.time() + 60)
        return result

    monkeypatch.setattr(control, "_request", request_then_worker_lets_go)
    outcome = control.cancel(run.id)
    assert (outcome.applied, outcome.run.status, outcome.run.control) == (True, RunStatus.CANCELLED, None)
    assert redis_client.hget(RunStore.key(run.id), "control") is None


def test_a_request_the_worker_honoured_meanwhile_counts_as_applied(redis_client, control, monkeypatch):
    run = put_run(redis_client, RunStatus.RUNNING)
    leases = Leases(redis_client)
    leases.acquire(run.id, "worker-x", 30)
    original = control._request
    store = RunStore(redis_client)

    def worker_pauses(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        paused = store.load(run.id)
        paused.set_status(RunStatus.PAUSED)
        with redis_client.pipeline() as pipe:
            store.write(pipe, paused)
            pipe.hdel(store.key(run.id), "control")
            pipe.execute()
        leases.release(run.id, "worker-x", due_at=None)
        return result

    monkeypatch.setattr(control, "_request", worker_pauses)
    outcome = control.pause(run.id)
    assert (outcome.applied, outcome.run.status) == (True, RunStatus.PAUSED)


@pytest.mark.parametrize("action", ["resume", "cancel"])
def test_a_paused_run_is_never_left_a_request_the_api_waits_briefly_instead(redis_client, control, action):
    run = put_run(redis_client, RunStatus.PAUSED)
    Leases(redis_client).acquire(run.id, "worker-x", 30)  # a worker that does not let go
    with pytest.raises(ConflictError, match="a worker is still pausing the execution; retry shortly"):
        getattr(control, action)(run.id)
    assert RunStore(redis_client).load(run.id).status == RunStatus.PAUSED
    assert redis_client.hget(RunStore.key(run.id), "control") is None  # no worker would ever read it

    # One that lets go within the wait: the API applies the request itself.
    other = put_run(redis_client, RunStatus.PAUSED)
    Leases(redis_client).acquire(other.id, "worker-y", 30)
    timer = threading.Timer(0.1, Leases(redis_client).release, args=(other.id, "worker-y"), kwargs={"due_at": None})
    timer.start()
    outcome = getattr(control, action)(other.id)
    timer.join()
    assert (outcome.applied, outcome.run.status) == (True, {"resume": RunStatus.QUEUED,
                                                            "cancel": RunStatus.CANCELLED}[action])


def test_accept_run_and_submit_run_share_one_enqueue(redis_client):
    queue = make_queue(redis_client, QUEUE)
    accepted = accept_run(redis_client, queue, workflow_id=1, owner_id=7, trigger="manual",
                          trigger_data=trigger_data({"a": 1}), execution_id="fixed-id")
    assert accepted.id == "fixed-id" and accepted.payload == {"a": 1}
    prebuilt = RunState(id="prebuilt", workflow_id=1, owner_id=7, trigger="webhook", payload=None,
                        trigger_data=trigger_data(), replay_of="fixed-id",
                        steps=[StepState(node_id="t", type="webhook", position=0, status=S.SUCCESS, output=1)])
    submit_run(redis_client, queue, prebuilt)
    stored = RunStore(redis_client).load("prebuilt")
    assert (stored.status, stored.replay_of, [s.key for s in stored.steps]) == (RunStatus.QUEUED, "fixed-id", ["t"])
    enqueue_run(queue, "prebuilt", job_id="prebuilt-again", at_front=True)
    assert queue.job_ids == ["prebuilt-again", "fixed-id", "prebuilt"]
    for job_id in queue.job_ids:
        job = Job.fetch(job_id, connection=redis_client, serializer=queue.serializer)
        assert (job.func_name, job.timeout, job.result_ttl, job.failure_ttl) == (RUN_JOB, JOB_TIMEOUT_S, 10,
                                                                                 7 * 24 * 3600)
