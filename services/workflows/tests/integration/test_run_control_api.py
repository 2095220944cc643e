"""POST /api/v1/logs/{id}/cancel|pause|resume and GET /api/v1/logs/{id}: the workflows app in this
process on real Redis and SQLite/PostgreSQL. Runs are written straight to Redis in the states the
tests need, and no worker drains the queue, so nothing but the API changes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from services.workflows.tests.factories import ServiceClient, step

from automateos_common.jsonutil import isoformat, utcnow
from automateos_common.lease import DUE_KEY, Leases
from automateos_common.queue import RUN_JOB, make_queue
from automateos_common.runs import RunStatus, RunStore, StepStatus

pytestmark = pytest.mark.integration

OWNER, OTHER = 1, 2
S = StepStatus
DEFINITION = {"nodes": [{"id": "t", "type": "webhook"},
                        {"id": "a", "type": "http_request", "config": {"url": "https://example.com/a"}},
                        {"id": "b", "type": "http_request", "config": {"url": "https://example.com/b"}}]}


@pytest.fixture
def wf(service: ServiceClient) -> dict:
    return service.create_workflow(OWNER, DEFINITION)


def post(service: ServiceClient, run_id: str, action: str, user: int = OWNER):
    return service.client.post(f"/api/v1/logs/{run_id}/{action}", headers=service.headers(user))


def running_steps() -> list:
    return [step("t", 0, S.SUCCESS, "webhook", output={"payload": {"n": 1}}), step("a", 1, S.RUNNING),
            step("b", 2, S.PENDING)]


def test_cancel_pause_resume_apply_at_once_when_no_worker_holds_the_run(service, wf):
    run = service.put_run(wf, OWNER, RunStatus.RUNNING, steps=running_steps())

    r = post(service, run.id, "pause")
    assert r.status_code == 200, r.text
    paused = r.json()
    assert (paused["status"], paused["pending_action"]) == ("paused", None)
    assert [s["status"] for s in paused["steps"]] == ["success", "running", "pending"]  # untouched
    assert service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OWNER)).json() == paused

    r = post(service, run.id, "resume")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    queue = make_queue(service.redis, service.settings.queue_name)
    assert queue.job_ids == [f"{run.id}-resume-2"]
    job = Job.fetch(queue.job_ids[0], connection=service.redis, serializer=queue.serializer)
    assert (job.func_name, list(job.args)) == (RUN_JOB, [run.id])

    r = post(service, run.id, "cancel")
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error_message"] == "cancelled by its owner"
    assert cancelled["completed_at"] is not None and cancelled["duration_ms"] is not None
    assert [s["status"] for s in cancelled["steps"]] == ["success", "cancelled", "cancelled"]
    assert service.redis.zscore(DUE_KEY, run.id) is None

    # The recorder takes the final state to the database.
    service.record()
    service.expire(run.id)
    from_db = service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OWNER)).json()
    assert from_db == cancelled


def test_a_waiting_run_paused_keeps_its_resume_time(service, wf):
    later = utcnow() + timedelta(hours=2)
    run = service.put_run(wf, OWNER, RunStatus.WAITING, resume_at=later,
                          steps=[step("t", 0, S.SUCCESS, "webhook"), step("a", 1, S.WAITING, resume_at=later)])
    Leases.set_due(service.redis, run.id, later.timestamp())
    r = post(service, run.id, "pause")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["resume_at"]) == ("paused", isoformat(later))
    assert body["steps"][1]["resume_at"] == isoformat(later)
    assert service.redis.zscore(DUE_KEY, run.id) is None


def test_a_busy_worker_gets_the_request_and_the_answer_is_202(service, wf):
    run = service.put_run(wf, OWNER, RunStatus.RUNNING, steps=running_steps())
    assert Leases(service.redis).acquire(run.id, "worker-x", 30)

    r = post(service, run.id, "pause")
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["pending_action"]) == ("running", "pause")
    assert service.redis.hget(RunStore.key(run.id), "control") == b"pause"

    r = post(service, run.id, "cancel")
    assert r.status_code == 202
    assert r.json()["pending_action"] == "cancel"
    shown = service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OWNER)).json()
    assert (shown["status"], shown["pending_action"]) == ("running", "cancel")
    assert Leases(service.redis).holder(run.id) == "worker-x"

    r = post(service, run.id, "pause")
    assert r.status_code == 409
    assert r.json() == {"error": {"code": "CONFLICT", "message": "a cancel of this execution is already pending"}}


@pytest.mark.parametrize(("status", "action", "message"), [
    (RunStatus.SUCCESS, "cancel", "execution is already success"),
    (RunStatus.FAILED, "pause", "execution is already failed"),
    (RunStatus.PAUSED, "pause", "execution is already paused"),
    (RunStatus.RUNNING, "resume", "only a paused execution can be resumed"),
    (RunStatus.QUEUED, "resume", "only a paused execution can be resumed"),
])
def test_requests_that_do_not_apply_are_409(service, wf, status, action, message):
    run = service.put_run(wf, OWNER, status)
    r = post(service, run.id, action)
    assert r.status_code == 409
    assert r.json() == {"error": {"code": "CONFLICT", "message": message}}
    assert RunStore(service.redis).load(run.id).status == status


def test_a_run_only_in_the_database_is_final(service, wf):
    run = service.put_run(wf, OWNER, RunStatus.SUCCESS, steps=[step("t", 0, S.SUCCESS, "webhook")])
    service.record()
    service.expire(run.id)
    for action in ("cancel", "pause", "resume"):
        r = post(service, run.id, action)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "CONFLICT"), action
    assert post(service, run.id, "cancel").json()["error"]["message"] == "execution is already success"


def test_someone_elses_unknown_or_orphaned_runs_are_404(service, wf):
    run = service.put_run(wf, OWNER, RunStatus.RUNNING)
    for action in ("cancel", "pause", "resume", "replay"):
        r = post(service, run.id, action, user=OTHER)
        assert r.status_code == 404, action
        assert r.json() == {"error": {"code": "NOT_FOUND", "message": "Execution not found"}}
        assert post(service, "no-such-run", action).status_code == 404
    assert RunStore(service.redis).load(run.id).control is None
    assert service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OTHER)).status_code == 404

    r = service.client.delete(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OWNER))
    assert r.status_code == 204
    for action in ("cancel", "pause", "resume", "replay"):
        assert post(service, run.id, action).status_code == 404, action
    assert RunStore(service.redis).load(run.id).status == RunStatus.RUNNING  # untouched


def test_unauthenticated_is_401(service, wf):
    run = service.put_run(wf, OWNER, RunStatus.RUNNING)
    r = service.client.post(f"/api/v1/logs/{run.id}/cancel")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "UNAUTHORIZED")


def test_history_shows_the_new_fields_and_cuts_big_values_that_redis_keeps(service, wf):
    big = {"blob": "x" * 5000}
    t0 = utcnow()
    run = service.put_run(wf, OWNER, RunStatus.FAILED, error_message="node 'a' failed: boom", result=big, steps=[
        step("t", 0, S.SUCCESS, "webhook", output=big, started_at=t0, completed_at=t0),
        step("a", 1, S.FAILED, input=big, error="boom", error_kind="5xx", attempts=3, branch=None,
             attempt_log=[{"attempt": 1, "error": "boom", "retry_in_s": 1.0}]),
        step("b", 2, S.SKIPPED, iteration=0, loop="l", branch="true"),
    ])
    stored = RunStore(service.redis).load(run.id)
    assert stored.steps[0].output == big  # every byte, for the nodes after it

    live = service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OWNER)).json()
    out = live["steps"][0]["output"]
    assert (out["_truncated"], out["limit_bytes"], out["size_bytes"]) == (True, 1024, len('{"blob":""}') + 5000)
    assert live["result"]["_truncated"] is True and live["steps"][1]["input"]["_truncated"] is True
    assert live["steps"][1]["attempt_log"] == [{"attempt": 1, "error": "boom", "retry_in_s": 1.0}]
    assert (live["steps"][1]["error_kind"], live["steps"][1]["attempts"]) == ("5xx", 3)
    assert (live["steps"][2]["iteration"], live["steps"][2]["loop"], live["steps"][2]["branch"]) == (0, "l", "true")
    assert live == stored.to_public(limit=1024)

    assert service.record() == 1
    service.expire(run.id)
    from_db = service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OWNER)).json()
    assert from_db == live


def test_run_summaries_list_the_new_statuses_and_fields(service, wf):
    later = utcnow() + timedelta(minutes=10)
    waiting = service.put_run(wf, OWNER, RunStatus.WAITING, resume_at=later)
    paused = service.put_run(wf, OWNER, RunStatus.PAUSED, replay_of="run-before")
    service.record()
    r = service.client.get(f"/api/v1/workflows/{wf['id']}/logs", headers=service.headers(OWNER))
    assert r.status_code == 200
    items = {i["id"]: i for i in r.json()["items"]}
    assert (items[waiting.id]["status"], items[waiting.id]["resume_at"], items[waiting.id]["replay_of"]) == \
        ("waiting", isoformat(later), None)
    assert (items[paused.id]["status"], items[paused.id]["resume_at"], items[paused.id]["replay_of"]) == \
        ("paused", None, "run-before")
