"""Cancel, pause, resume and replay through the gateway, on the stack's PostgreSQL and Redis.

The runs are written straight into the stack's Redis in the states each test needs, without a job,
so the engine's workers never pick them up: these tests do not depend on the engine finishing runs.
(A resume and a replay do put a job on the queue; nothing here looks at what the engine does next.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis import Redis
from tests.integration.helpers import Api

from automateos_common.jsonutil import utcnow
from automateos_common.lease import Leases
from automateos_common.runs import RunState, RunStatus, RunStore, StepState, StepStatus
from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis(pg_stack) -> Any:
    client = Redis.from_url(pg_stack.env["REDIS_URL"])
    yield client
    client.close()


def put_run(redis: Redis, wf: dict[str, Any], owner_id: int, status: RunStatus,
            steps: list[StepState] | None = None) -> RunState:
    now = utcnow()
    run = RunState(id=f"e2e-{time.time_ns()}", workflow_id=wf["id"], owner_id=owner_id, trigger="manual",
                   payload={"n": 1}, trigger_data={"payload": {"n": 1}, "headers": {}, "query": {}, "method": "POST"},
                   status=status, steps=steps or [], started_at=None if status == RunStatus.QUEUED else now,
                   completed_at=now if status in (RunStatus.SUCCESS, RunStatus.FAILED) else None)
    with redis.pipeline() as pipe:
        RunStore(redis).write_new(pipe, run)
        pipe.execute()
    return run


def example_steps(action: StepStatus) -> list[StepState]:
    return [StepState(node_id="trigger-1", type="webhook", position=0, status=StepStatus.SUCCESS, attempts=1,
                      output={"payload": {"n": 1}, "headers": {}, "query": {}, "method": "POST"}),
            StepState(node_id="action-1", type="http_request", position=1, status=action,
                      attempts=1 if action != StepStatus.PENDING else 0),
            StepState(node_id="filter-1", type="filter", position=2,
                      status=StepStatus.SKIPPED if action == StepStatus.FAILED else StepStatus.PENDING)]


def test_pause_cancel_and_resume_through_the_gateway(api: Api, echo_server, redis):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"))
    h = user["headers"]

    run = put_run(redis, wf, user["id"], RunStatus.RUNNING, example_steps(StepStatus.RUNNING))
    # A worker holds it: the request waits for it, 202.
    assert Leases(redis).acquire(run.id, "worker-x", 30)
    r = api.http.post(f"/api/v1/logs/{run.id}/pause", headers=h)
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["pending_action"]) == ("running", "pause")
    # The worker goes away without applying it; the next request is applied by the API itself,
    # the promised pause first, then the cancel.
    Leases(redis).release(run.id, "worker-x", due_at=None)
    r = api.http.post(f"/api/v1/logs/{run.id}/cancel", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["pending_action"], body["error_message"]) == \
        ("cancelled", None, "cancelled by its owner")
    assert [s["status"] for s in body["steps"]] == ["success", "cancelled", "cancelled"]
    r = api.http.post(f"/api/v1/logs/{run.id}/resume", headers=h)
    assert (r.status_code, r.json()["error"]) == (409, {"code": "CONFLICT",
                                                        "message": "only a paused execution can be resumed"})

    paused = put_run(redis, wf, user["id"], RunStatus.QUEUED)
    r = api.http.post(f"/api/v1/logs/{paused.id}/pause", headers=h)
    assert (r.status_code, r.json()["status"]) == (200, "paused")
    other = api.register()
    assert api.http.post(f"/api/v1/logs/{paused.id}/resume", headers=other["headers"]).status_code == 404
    r = api.http.post(f"/api/v1/logs/{paused.id}/resume", headers=h)
    assert (r.status_code, r.json()["status"]) == (200, "queued")  # and a job is on the queue: the engine's now


def test_replay_through_the_gateway(api: Api, echo_server, redis):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"))
    h = user["headers"]
    old = put_run(redis, wf, user["id"], RunStatus.FAILED, example_steps(StepStatus.FAILED))

    r = api.http.post(f"/api/v1/logs/{old.id}/replay", json={"from": "sideways"}, headers=h)
    assert (r.status_code, r.json()["error"]["details"]["field"]) == (422, "from")
    assert api.http.post(f"/api/v1/logs/{old.id}/replay", headers=api.register()["headers"]).status_code == 404

    r = api.http.post(f"/api/v1/logs/{old.id}/replay", headers=h)
    assert r.status_code == 202, r.text
    new_id = r.json()["execution_id"]
    assert r.json() == {"execution_id": new_id, "status": "queued", "replay_of": old.id}
    assert r.headers["location"] == f"/api/v1/logs/{new_id}"
    shown = api.http.get(f"/api/v1/logs/{new_id}", headers=h)
    assert shown.status_code == 200
    assert (shown.json()["replay_of"], shown.json()["payload"]) == (old.id, {"n": 1})
