"""POST /api/v1/logs/{id}/replay: a new run with the old trigger on the current definition; from
`failed` it keeps exactly the steps that are still valid. No worker drains the test's queue, so the
new run is seen as the API wrote it."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from rq.job import Job
from services.workflows.tests.factories import ServiceClient, step
from sqlalchemy import text

from automateos_common.jsonutil import isoformat, utcnow
from automateos_common.queue import RUN_JOB, make_queue
from automateos_common.runs import RunState, RunStatus, RunStore, StepStatus

pytestmark = pytest.mark.integration

OWNER, OTHER = 1, 2
S = StepStatus


def http(node_id: str) -> dict:
    return {"id": node_id, "type": "http_request", "config": {"url": f"https://example.com/{node_id}"}}


# t -> a -> c -> e and t -> b -> d -> e: execution order t, a, b, c, d, e.
DEFINITION = {
    "nodes": [{"id": "t", "type": "webhook"}, http("a"), http("b"), http("c"),
              {"id": "d", "type": "filter", "config": {"condition": "true"}}, http("e")],
    "connections": [{"from": "t", "to": "a"}, {"from": "t", "to": "b"}, {"from": "a", "to": "c"},
                    {"from": "b", "to": "d"}, {"from": "c", "to": "e"}, {"from": "d", "to": "e"}],
}
TYPES = {"t": "webhook", "a": "http_request", "b": "http_request", "c": "http_request", "d": "filter",
         "e": "http_request"}


@pytest.fixture
def wf(service: ServiceClient) -> dict:
    return service.create_workflow(OWNER, DEFINITION)


def old_run(service: ServiceClient, wf: dict, statuses: dict[str, StepStatus], *,
            run_status: RunStatus = RunStatus.FAILED, outputs: dict | None = None) -> RunState:
    t0 = utcnow() - timedelta(minutes=5)
    steps = []
    for i, node_id in enumerate(TYPES):
        status = statuses[node_id]
        done = status in (S.SUCCESS, S.FAILED)
        steps.append(step(
            node_id, i, status, TYPES[node_id],
            input=None if node_id == "t" else {"from": "before"},
            output=(outputs or {}).get(node_id, {"out": node_id}) if status == S.SUCCESS else None,
            error="boom" if status == S.FAILED else None, attempts=2 if done else 0,
            started_at=t0 + timedelta(seconds=i) if done else None,
            completed_at=t0 + timedelta(seconds=i, milliseconds=500) if done else None,
            note="condition true; continued" if node_id == "d" and status == S.SUCCESS else None,
            branch=None,
        ))
    return service.put_run(wf, OWNER, run_status, steps=steps,
                           error_message="node 'b' failed: boom" if run_status == RunStatus.FAILED else None)


def replay(service: ServiceClient, run_id: str, body: object = None, user: int = OWNER):
    kwargs = {} if body is None else {"json": body}
    return service.client.post(f"/api/v1/logs/{run_id}/replay", headers=service.headers(user), **kwargs)


def accepted(service: ServiceClient, r, old_id: str) -> RunState:
    assert r.status_code == 202, r.text
    body = r.json()
    assert body == {"execution_id": body["execution_id"], "status": "queued", "replay_of": old_id}
    assert r.headers["location"] == f"/api/v1/logs/{body['execution_id']}"
    new = RunStore(service.redis).load(body["execution_id"])
    assert new is not None
    return new


def test_replay_from_failed_keeps_the_steps_before_the_failure(service, wf):
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.SUCCESS, "b": S.FAILED, "c": S.SUCCESS,
                                "d": S.SKIPPED, "e": S.SKIPPED})

    new = accepted(service, replay(service, old.id), old.id)  # "failed" is the default

    assert new.id != old.id
    assert (new.status, new.replay_of, new.workflow_id, new.owner_id, new.trigger) == \
        (RunStatus.QUEUED, old.id, wf["id"], OWNER, "webhook")
    assert (new.payload, new.trigger_data) == (old.payload, old.trigger_data)
    # t, a and c succeeded on inputs that are all kept; b failed; d and e come after it.
    # (Redis keeps the order only; the positions in the plan are in tests/unit/test_replay.py.)
    assert [s.key for s in new.steps] == ["t", "a", "c"]
    olds = {s.key: s for s in RunStore(service.redis).load(old.id).steps}
    for s in new.steps:
        was = olds[s.key]
        assert (s.status, s.output, s.input, s.attempts, s.started_at, s.completed_at, s.branch, s.type) == \
            (S.SUCCESS, was.output, was.input, 2, was.started_at, was.completed_at, was.branch, was.type)
        assert s.note == f"copied from execution {old.id}"
    # One job, named by the run, on the service's queue.
    queue = make_queue(service.redis, service.settings.queue_name)
    assert queue.job_ids == [new.id]
    assert Job.fetch(new.id, connection=service.redis, serializer=queue.serializer).func_name == RUN_JOB

    shown = service.client.get(f"/api/v1/logs/{new.id}", headers=service.headers(OWNER)).json()
    assert (shown["status"], shown["replay_of"], shown["started_at"]) == ("queued", old.id, None)
    assert [s["node_id"] for s in shown["steps"]] == ["t", "a", "c"]
    # The old run is untouched.
    assert RunStore(service.redis).load(old.id).to_public() == old_run_public(service, old.id)


def old_run_public(service: ServiceClient, run_id: str) -> dict:
    return RunStore(service.redis).load(run_id).to_public()


def test_a_step_fed_by_a_step_that_is_not_copied_is_not_copied(service, wf):
    """A cut (too big) output cannot feed the nodes after it: the step runs again, and so does c."""
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.SUCCESS, "b": S.FAILED, "c": S.SUCCESS,
                                "d": S.SKIPPED, "e": S.SKIPPED}, outputs={"a": {"blob": "x" * 5000}})
    service.record()
    service.expire(old.id)  # only the database has it now, with a's output cut to a marker
    from_db = service.client.get(f"/api/v1/logs/{old.id}", headers=service.headers(OWNER)).json()
    assert from_db["steps"][1]["output"]["_truncated"] is True

    new = accepted(service, replay(service, old.id, {"from": "failed"}), old.id)

    assert [s.key for s in new.steps] == ["t"]
    assert new.trigger_data == old.trigger_data  # kept whole in the database


def test_a_node_whose_type_changed_since_is_run_again(service, wf):
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.SUCCESS, "b": S.SUCCESS, "c": S.SUCCESS,
                                "d": S.SUCCESS, "e": S.FAILED})
    changed = copy.deepcopy(DEFINITION)
    changed["nodes"][3] = {"id": "c", "type": "filter", "config": {"condition": "true"}}
    r = service.client.put(f"/api/v1/workflows/{wf['id']}", json={"definition": changed, "is_active": False},
                           headers=service.headers(OWNER))
    assert r.status_code == 200

    new = accepted(service, replay(service, old.id), old.id)  # inactive workflows may be replayed

    assert [s.key for s in new.steps] == ["t", "a", "b", "d"]
    assert next(s for s in new.steps if s.key == "d").note == f"copied from execution {old.id}"


def test_a_cancelled_run_replays_from_where_it_stopped(service, wf):
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.SUCCESS, "b": S.CANCELLED, "c": S.CANCELLED,
                                "d": S.CANCELLED, "e": S.CANCELLED}, run_status=RunStatus.CANCELLED)
    new = accepted(service, replay(service, old.id), old.id)
    assert [s.key for s in new.steps] == ["t", "a"]


def test_replay_from_start_copies_nothing(service, wf):
    old = old_run(service, wf, dict.fromkeys(TYPES, S.SUCCESS), run_status=RunStatus.SUCCESS)
    new = accepted(service, replay(service, old.id, {"from": "start"}), old.id)
    assert new.steps == []
    assert (new.trigger_data, new.payload, new.replay_of) == (old.trigger_data, old.payload, old.id)

    # A replay can itself be replayed once it has finished; until then it cannot.
    r = replay(service, new.id, {"from": "start"})
    assert r.status_code == 409
    assert r.json() == {"error": {"code": "CONFLICT",
                                  "message": "only a finished execution can be replayed; this one is queued"}}


def test_an_old_row_without_its_trigger_data_replays_with_its_payload(service, wf):
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.FAILED, "b": S.SKIPPED, "c": S.SKIPPED, "d": S.SKIPPED,
                                "e": S.SKIPPED})
    service.record()
    service.expire(old.id)
    with service.engine.begin() as conn:  # recorded before trigger_data was kept
        conn.execute(text("UPDATE executions SET trigger_data = NULL WHERE id = :id"), {"id": old.id})

    new = accepted(service, replay(service, old.id), old.id)

    assert new.trigger_data == {"payload": old.payload}
    assert [s.key for s in new.steps] == ["t"]


def test_replay_refusals(service, wf):
    ok = old_run(service, wf, dict.fromkeys(TYPES, S.SUCCESS), run_status=RunStatus.SUCCESS)
    r = replay(service, ok.id)
    assert r.status_code == 409
    assert r.json()["error"] == {"code": "CONFLICT", "message": "the execution succeeded: nothing failed to "
                                                                "replay from; use {\"from\": \"start\"}"}
    for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED):
        live = service.put_run(wf, OWNER, status)
        r = replay(service, live.id, {"from": "start"})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "CONFLICT"), status

    for body, field in (({"from": "middle"}, "from"), ({"from": "start", "x": 1}, "x"), ([], "body")):
        r = replay(service, ok.id, body)
        assert r.status_code == 422, body
        assert (r.json()["error"]["code"], r.json()["error"]["details"]["field"]) == ("VALIDATION_ERROR", field)

    assert replay(service, ok.id, {"from": "start"}, user=OTHER).status_code == 404
    assert make_queue(service.redis, service.settings.queue_name).job_ids == []  # nothing was queued


def test_resume_of_a_replayed_waiting_run_and_its_fields_in_history(service, wf):
    """replay_of and resume_at reach the database and the run summaries."""
    old = old_run(service, wf, {"t": S.SUCCESS, "a": S.FAILED, "b": S.SKIPPED, "c": S.SKIPPED, "d": S.SKIPPED,
                                "e": S.SKIPPED})
    new = accepted(service, replay(service, old.id), old.id)
    service.record()
    items = service.client.get(f"/api/v1/workflows/{wf['id']}/logs", headers=service.headers(OWNER)).json()["items"]
    assert [(i["id"], i["replay_of"]) for i in items] == [(new.id, old.id), (old.id, None)]
    assert isoformat(new.created_at) == items[0]["created_at"]
