"""The recorder moves run state from Redis to the database: batched, ordered by rev, crash-safe."""

from __future__ import annotations

import os
import sys
import threading
from datetime import timedelta

import pytest
from services.workflows.tests.factories import make_workflow
from sqlmodel import Session, col, select

from automateos_common.jsonutil import utcnow
from automateos_common.queue import accept_run, make_queue
from automateos_common.runs import EVENTS_STREAM, RunStatus, RunStore, StepState, StepStatus, is_truncated
from automateos_workflows import crud
from automateos_workflows.models import Execution, ExecutionStep
from automateos_workflows.recorder import GROUP, Recorder

pytestmark = pytest.mark.integration


def queue(redis, wf, payload=None):
    return accept_run(redis, make_queue(redis, "t"), workflow_id=wf.id, owner_id=wf.owner_id, trigger="webhook",
                      trigger_data={"payload": payload, "headers": {}, "query": {}, "method": "POST"})


def finish(redis, run_id):
    store = RunStore(redis)
    run = store.load(run_id)
    run.set_status(RunStatus.RUNNING)
    run.started_at = utcnow()
    run.steps = [StepState(node_id="t", type="webhook", position=0)]
    run.steps[0].set_status(StepStatus.RUNNING)
    run.steps[0].set_status(StepStatus.SUCCESS)
    run.steps[0].output = {"payload": {"k": "v"}}
    run.result = {"payload": {"k": "v"}}
    run.set_status(RunStatus.SUCCESS)
    run.completed_at = utcnow()
    with redis.pipeline() as pipe:
        store.write(pipe, run, steps=run.steps, order=True, result=True)
        pipe.execute()
    return run


def test_queued_then_finished_run_lands_in_the_database_with_its_steps(db_engine, redis_client):
    wf = make_workflow(db_engine)
    rec = Recorder(db_engine, redis_client, finished_ttl_s=60)
    rec.ensure_group()
    run = queue(redis_client, wf, {"k": "v"})

    assert rec.step(block_ms=10) == 1
    with Session(db_engine) as s:
        assert s.get(Execution, run.id).status == "queued"

    finish(redis_client, run.id)
    assert rec.step(block_ms=10) == 1
    with Session(db_engine) as s:
        stored = crud.get_run(session=s, owner_id=wf.owner_id, run_id=run.id)
        assert crud.get_run(session=s, owner_id=wf.owner_id + 1, run_id=run.id) is None
    assert stored.to_public() == RunStore(redis_client).load(run.id).to_public()
    assert stored.status == RunStatus.SUCCESS
    assert [s.node_id for s in stored.steps] == ["t"]
    # Recorded and finished: the Redis copy now expires; the stream is emptied.
    assert 0 < redis_client.ttl(RunStore.key(run.id)) <= 60
    assert redis_client.xlen(EVENTS_STREAM) == 0


def test_older_state_never_overwrites_newer(db_engine, redis_client):
    wf = make_workflow(db_engine)
    rec = Recorder(db_engine, redis_client)
    rec.ensure_group()
    run = queue(redis_client, wf)
    finish(redis_client, run.id)
    rec.step(block_ms=10)
    store = RunStore(redis_client)
    stale = store.load(run.id)
    stale.rev = 1
    stale.status = RunStatus.QUEUED
    from automateos_workflows.recorder import upsert_runs

    with Session(db_engine) as s:
        assert upsert_runs(s, db_engine, [stale]) == []
        s.commit()
        assert s.get(Execution, run.id).status == "success"


def test_runs_of_a_deleted_workflow_are_dropped_and_the_rest_of_the_batch_kept(db_engine, redis_client):
    keep, gone = make_workflow(db_engine, name="keep"), make_workflow(db_engine, name="gone")
    rec = Recorder(db_engine, redis_client)
    rec.ensure_group()
    r1, r2 = queue(redis_client, keep), queue(redis_client, gone)
    with Session(db_engine) as s:
        crud.delete_workflow(session=s, wf=s.get(type(gone), gone.id))
        s.commit()

    rec.step(block_ms=10)

    with Session(db_engine) as s:
        assert [e.id for e in s.exec(select(Execution)).all()] == [r1.id]
        assert s.exec(select(ExecutionStep)).all() == []
    assert r2.id  # dropped, not an error


def test_entries_read_by_a_crashed_recorder_are_taken_over(db_engine, redis_client):
    wf = make_workflow(db_engine)
    dead = Recorder(db_engine, redis_client, consumer="dead")
    dead.ensure_group()
    run = queue(redis_client, wf)
    # "dead" reads the entry, then dies before recording and acknowledging it.
    redis_client.xreadgroup(GROUP, "dead", {EVENTS_STREAM: ">"}, count=10)
    alive = Recorder(db_engine, redis_client, consumer="alive", claim_idle_ms=0)

    assert alive.step(block_ms=10) == 0
    assert alive.recover() == 1

    with Session(db_engine) as s:
        assert s.get(Execution, run.id) is not None
    assert redis_client.xpending(EVENTS_STREAM, GROUP)["pending"] == 0


def test_new_fields_are_recorded_and_big_values_cut_in_the_database_only(db_engine, redis_client):
    wf = make_workflow(db_engine)
    rec = Recorder(db_engine, redis_client, value_limit=1024)
    rec.ensure_group()
    big = {"rows": list(range(1000))}
    later = utcnow() + timedelta(minutes=3)
    store = RunStore(redis_client)
    run = queue(redis_client, wf, {"k": "v"})
    run = store.load(run.id)
    run.set_status(RunStatus.RUNNING)
    run.set_status(RunStatus.WAITING)
    run.started_at, run.resume_at, run.replay_of, run.result = utcnow(), later, "run-before", big
    t = StepState(node_id="t", type="webhook", position=0, status=StepStatus.SUCCESS, output=big, attempts=1)
    loop = StepState(node_id="l", type="loop", position=1, status=StepStatus.RUNNING, input=big, attempts=1)
    items = [StepState(node_id="each", type="http_request", position=2 + i, status=StepStatus.SUCCESS,
                       iteration=i, loop="l", branch="true", output={"i": i}, attempts=2, error_kind="5xx",
                       attempt_log=[{"attempt": 1, "error": "answered 503", "retry_in_s": 1.5},
                                    {"attempt": 2, "error": None, "retry_in_s": None}]) for i in range(2)]
    wait = StepState(node_id="w", type="delay", position=4, status=StepStatus.WAITING, resume_at=later, attempts=1,
                     stopped=True)
    run.steps = [t, loop, *items, wait]
    with redis_client.pipeline() as pipe:
        store.write(pipe, run, steps=run.steps, order=True, result=True)
        pipe.execute()

    assert rec.step(block_ms=10) == 1

    live = store.load(run.id)
    assert live.steps[0].output == big and live.result == big  # Redis keeps every byte
    with Session(db_engine) as s:
        stored = crud.get_run(session=s, owner_id=wf.owner_id, run_id=run.id)
        rows = s.exec(select(ExecutionStep).where(ExecutionStep.execution_id == run.id)
                      .order_by(col(ExecutionStep.position))).all()
        ex = s.get(Execution, run.id)
    assert [(r.key, r.node_id, r.iteration) for r in rows] == [("t", "t", None), ("l", "l", None),
                                                               ("each[0]", "each", 0), ("each[1]", "each", 1),
                                                               ("w", "w", None)]
    assert ex.trigger_data == {"payload": {"k": "v"}, "headers": {}, "query": {}, "method": "POST"}
    assert is_truncated(ex.result) and is_truncated(rows[0].output) and is_truncated(rows[1].input)
    # Everything the API shows is the same from either place.
    assert stored.to_public() == live.to_public(limit=1024)
    assert stored.trigger_data == live.trigger_data
    assert (stored.status, stored.replay_of) == (RunStatus.WAITING, "run-before")
    assert stored.steps[2].attempt_log == items[0].attempt_log
    assert (stored.steps[4].stopped, stored.steps[4].resume_at is not None) == (True, True)


def test_step_rows_are_keyed_by_step_so_loop_iterations_are_rows_of_their_own(db_engine, redis_client):
    """A loop that gets more iterations later: new rows are added, the earlier ones updated in place."""
    wf = make_workflow(db_engine)
    rec = Recorder(db_engine, redis_client)
    rec.ensure_group()
    store = RunStore(redis_client)
    run = store.load(queue(redis_client, wf).id)
    run.set_status(RunStatus.RUNNING)
    run.steps = [StepState(node_id="each", type="http_request", position=0, iteration=0, loop="l",
                           status=StepStatus.RUNNING)]
    with redis_client.pipeline() as pipe:
        store.write(pipe, run, steps=run.steps, order=True)
        pipe.execute()
    rec.step(block_ms=10)
    run.steps[0].set_status(StepStatus.SUCCESS)
    run.steps.append(StepState(node_id="each", type="http_request", position=1, iteration=1, loop="l"))
    with redis_client.pipeline() as pipe:
        store.write(pipe, run, steps=run.steps, order=True)
        pipe.execute()
    rec.step(block_ms=10)
    with Session(db_engine) as s:
        stored = crud.get_run(session=s, owner_id=wf.owner_id, run_id=run.id)
    assert [(st.key, st.status) for st in stored.steps] == [("each[0]", StepStatus.SUCCESS),
                                                            ("each[1]", StepStatus.PENDING)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is a Linux feature")
def test_the_recorder_thread_yields_the_cpu_and_the_rest_of_the_process_does_not(db_engine, redis_client):
    rec = Recorder(db_engine, redis_client, nice=7)
    seen: dict[str, int] = {}

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def body() -> None:
        seen["before"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        rec.lower_priority()
        seen["after"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(5)
    assert seen["after"] == max(7, seen["before"])  # niceness 7 (never made higher priority than it was)
    assert seen["before"] < 7 and seen["after"] == 7  # the test runs at normal priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before  # only that thread
