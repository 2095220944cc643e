"""Run and step state: allowed transitions, and the public shape of GET /api/v1/logs/{id}."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from automateos_common.runs import InvalidTransition, RunState, RunStatus, StepState, StepStatus

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)

# API.md, GET /api/v1/logs/{execution_id}, plus our extensions.
API_RUN_KEYS = {"id", "workflow_id", "status", "trigger", "payload", "result", "error_message", "started_at",
                "completed_at", "duration_ms", "steps"}
RUN_EXTENSIONS = {"created_at", "workflow_version", "resume_at", "replay_of", "pending_action"}
API_STEP_KEYS = {"node_id", "type", "status", "input", "output", "error", "attempts", "started_at", "completed_at"}
STEP_EXTENSIONS = {"note", "iteration", "loop", "branch", "resume_at", "attempt_log", "error_kind", "stopped"}


def make_run(**overrides: Any) -> RunState:
    fields: dict[str, Any] = {"id": "run-1", "workflow_id": 3, "owner_id": 9, "trigger": "webhook",
                              "payload": {"a": 1}, "created_at": T0}
    fields.update(overrides)
    return RunState(**fields)


def make_step(node_id: str = "action-1", position: int = 1, **overrides: Any) -> StepState:
    return StepState(node_id=node_id, type="http_request", position=position, **overrides)


R, S = RunStatus, StepStatus

RUN_ALLOWED = {
    (R.QUEUED, R.RUNNING), (R.QUEUED, R.PAUSED), (R.QUEUED, R.FAILED), (R.QUEUED, R.CANCELLED),
    (R.RUNNING, R.RUNNING), (R.RUNNING, R.WAITING), (R.RUNNING, R.PAUSED), (R.RUNNING, R.SUCCESS),
    (R.RUNNING, R.FAILED), (R.RUNNING, R.CANCELLED),
    (R.WAITING, R.RUNNING), (R.WAITING, R.PAUSED), (R.WAITING, R.FAILED), (R.WAITING, R.CANCELLED),
    (R.PAUSED, R.QUEUED), (R.PAUSED, R.CANCELLED),
}
STEP_ALLOWED = {
    (S.PENDING, S.RUNNING), (S.PENDING, S.SKIPPED), (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.RUNNING), (S.RUNNING, S.WAITING), (S.RUNNING, S.SUCCESS), (S.RUNNING, S.FAILED),
    (S.RUNNING, S.SKIPPED), (S.RUNNING, S.CANCELLED),
    (S.WAITING, S.RUNNING), (S.WAITING, S.SUCCESS), (S.WAITING, S.FAILED), (S.WAITING, S.CANCELLED),
}


@pytest.mark.parametrize(("old", "new"), sorted(RUN_ALLOWED))
def test_allowed_run_transitions(old: RunStatus, new: RunStatus) -> None:
    run = make_run(status=old)
    run.set_status(new)
    assert run.status is new


@pytest.mark.parametrize(("old", "new"), sorted({(a, b) for a in R for b in R} - RUN_ALLOWED))
def test_refused_run_transitions(old: RunStatus, new: RunStatus) -> None:
    run = make_run(status=old)
    with pytest.raises(InvalidTransition) as excinfo:
        run.set_status(new)
    assert str(excinfo.value) == f"run run-1: {old.value} -> {new.value}"
    assert run.status is old


@pytest.mark.parametrize(("old", "new"), sorted(STEP_ALLOWED))
def test_allowed_step_transitions(old: StepStatus, new: StepStatus) -> None:
    step = make_step(status=old)
    step.set_status(new)
    assert step.status is new


@pytest.mark.parametrize(("old", "new"), sorted({(a, b) for a in S for b in S} - STEP_ALLOWED))
def test_refused_step_transitions(old: StepStatus, new: StepStatus) -> None:
    step = make_step(status=old)
    with pytest.raises(InvalidTransition) as excinfo:
        step.set_status(new)
    assert str(excinfo.value) == f"step action-1: {old.value} -> {new.value}"
    assert step.status is old


@pytest.mark.parametrize(("status", "terminal"), [(R.QUEUED, False), (R.RUNNING, False), (R.WAITING, False),
                                                  (R.PAUSED, False), (R.SUCCESS, True), (R.FAILED, True),
                                                  (R.CANCELLED, True)])
def test_is_terminal(status: RunStatus, terminal: bool) -> None:
    assert make_run(status=status).is_terminal is terminal


def test_a_new_run_is_queued_and_its_steps_pending() -> None:
    assert make_run().status is RunStatus.QUEUED
    assert make_step().status is StepStatus.PENDING
    assert make_step().attempts == 0


def test_public_keys_are_the_api_contract() -> None:
    public = make_run(steps=[make_step()]).to_public()
    assert set(public) == API_RUN_KEYS | RUN_EXTENSIONS
    assert set(public["steps"][0]) == API_STEP_KEYS | STEP_EXTENSIONS


def test_to_public() -> None:
    run = make_run(status=RunStatus.SUCCESS, result={"ok": True}, started_at=T0 + timedelta(milliseconds=5),
                   completed_at=T0 + timedelta(milliseconds=17, microseconds=900), workflow_version=4)
    run.steps = [
        make_step("filter-1", 2, status=StepStatus.SKIPPED),
        make_step("action-1", 1, status=StepStatus.SUCCESS, input={"in": 1}, output={"status": 200}, attempts=2,
                  started_at=T0, completed_at=T0 + timedelta(seconds=1), note=None),
        StepState(node_id="trigger-1", type="webhook", position=0, status=StepStatus.SUCCESS, output={"p": 1},
                  attempts=1),
    ]
    assert run.to_public() == {
        "id": "run-1", "workflow_id": 3, "status": "success", "trigger": "webhook", "payload": {"a": 1},
        "result": {"ok": True}, "error_message": None, "created_at": "2026-01-02T03:04:05.678Z",
        "started_at": "2026-01-02T03:04:05.683Z", "completed_at": "2026-01-02T03:04:05.695Z", "duration_ms": 12,
        "workflow_version": 4, "resume_at": None, "replay_of": None, "pending_action": None,
        "steps": [
            {"node_id": "trigger-1", "type": "webhook", "status": "success", "input": None, "output": {"p": 1},
             "error": None, "attempts": 1, "started_at": None, "completed_at": None, "note": None,
             "iteration": None, "loop": None, "branch": None, "resume_at": None, "attempt_log": [],
             "error_kind": None, "stopped": False},
            {"node_id": "action-1", "type": "http_request", "status": "success", "input": {"in": 1},
             "output": {"status": 200}, "error": None, "attempts": 2, "started_at": "2026-01-02T03:04:05.678Z",
             "completed_at": "2026-01-02T03:04:06.678Z", "note": None,
             "iteration": None, "loop": None, "branch": None, "resume_at": None, "attempt_log": [],
             "error_kind": None, "stopped": False},
            {"node_id": "filter-1", "type": "http_request", "status": "skipped", "input": None, "output": None,
             "error": None, "attempts": 0, "started_at": None, "completed_at": None, "note": None,
             "iteration": None, "loop": None, "branch": None, "resume_at": None, "attempt_log": [],
             "error_kind": None, "stopped": False},
        ],
    }
    assert run.owner_id == 9  # kept, but not public


def test_duration_ms() -> None:
    assert make_run().duration_ms is None
    assert make_run(started_at=T0).duration_ms is None
    assert make_run(started_at=T0, completed_at=T0).duration_ms == 0
    assert make_run(started_at=T0, completed_at=T0 + timedelta(seconds=2, microseconds=345_999)).duration_ms == 2345


def test_naive_times_are_taken_as_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert make_run(created_at=naive).to_public()["created_at"] == "2026-01-02T03:04:05.000Z"
    other_zone = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert make_run(created_at=other_zone).to_public()["created_at"] == "2026-01-02T03:04:05.000Z"


def test_a_step_round_trips_through_its_public_form() -> None:
    step = make_step(status=StepStatus.FAILED, input={"x": [1]}, error="POST https://x answered 500", attempts=3,
                     started_at=T0, completed_at=T0 + timedelta(milliseconds=250), note="retried")
    assert StepState.from_public(step.to_public(), position=1) == step


def test_history_cuts_big_values_with_a_marker_and_keeps_small_ones() -> None:
    big = {"blob": "x" * 5000}
    run = make_run(result=big, steps=[make_step(output=big, input={"small": 1})])
    public = run.to_public(limit=1000)
    marker = public["steps"][0]["output"]
    assert marker["_truncated"] is True
    assert marker["size_bytes"] == len('{"blob":"' + "x" * 5000 + '"}')
    assert marker["limit_bytes"] == 1000
    assert marker["preview"].startswith('{"blob":"xxx') and len(marker["preview"]) == 1024
    assert public["result"]["_truncated"] is True
    assert public["steps"][0]["input"] == {"small": 1}
    # The run itself keeps every byte.
    assert run.to_public()["steps"][0]["output"] == big
