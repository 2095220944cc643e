"""Durable execution end to end, through the gateway: a branching, looping, parked run as a client sees it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from automateos_devstack.testing import EchoServer

from .helpers import Api

pytestmark = pytest.mark.integration


def definition(echo_url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "big-order", "type": "if", "config": {"condition": "{{trigger.payload.total}} > 100"}},
            {"id": "each-line", "type": "loop", "config": {"items": "{{trigger.payload.lines}}", "concurrency": 2}},
            {"id": "price", "type": "http_request",
             "config": {"url": f"{echo_url}/price/{{{{loop.item.sku}}}}", "method": "POST",
                        "body": {"sku": "{{loop.item.sku}}", "i": "{{loop.index}}"}, "idempotency_key": True},
             "retry": {"max_attempts": 3, "initial_s": 0.1}},
            {"id": "cool-off", "type": "delay", "config": {"seconds": 3}},
            {"id": "small", "type": "transform", "config": {"value": {"review": False}}},
            {"id": "summary", "type": "merge", "config": {"mode": "object"}},
        ],
        "connections": [
            {"from": "start", "to": "big-order"},
            {"from": "big-order", "output": "true", "to": "each-line"},
            {"from": "each-line", "output": "each", "to": "price"},
            {"from": "each-line", "output": "done", "to": "cool-off"},
            {"from": "big-order", "output": "false", "to": "small"},
            {"from": "cool-off", "to": "summary"},
            {"from": "small", "to": "summary"},
        ],
    }


def test_a_branching_looping_run_parks_on_its_delay_and_finishes(api: Api, pg_stack):
    user = api.register()
    with EchoServer() as echo:
        wf = api.create_workflow(user, definition(echo.url))
        payload = {"total": 250, "lines": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}
        r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json=payload, headers=user["headers"])
        assert r.status_code == 202, r.text
        execution_id = r.json()["execution_id"]

        waiting = api.wait_run(user, execution_id, until=lambda run: run["status"] == "waiting")
        assert waiting["resume_at"] is not None
        steps = {s["node_id"] if s["iteration"] is None else f"{s['node_id']}[{s['iteration']}]": s
                 for s in waiting["steps"]}
        assert steps["cool-off"]["status"] == "waiting"
        assert steps["small"]["status"] == "skipped"

        done = api.wait_run(user, execution_id, timeout=20)
        assert done["status"] == "success", done["error_message"]
        steps = {s["node_id"] if s["iteration"] is None else f"{s['node_id']}[{s['iteration']}]": s
                 for s in done["steps"]}
        assert steps["big-order"]["branch"] == "true"
        assert [steps[f"price[{i}]"]["output"]["body"]["path"] for i in range(3)] == [
            "/price/a", "/price/b", "/price/c"]
        assert steps["each-line"]["output"]["count"] == 3
        assert steps["summary"]["output"] == {"cool-off": steps["each-line"]["output"]}
        assert sorted(r["path"] for r in echo.requests) == ["/price/a", "/price/b", "/price/c"]
        assert len({r["headers"]["Idempotency-Key"] for r in echo.requests}) == 3  # one per item

        # The history in the database has it all once the recorder caught up.
        deadline = time.monotonic() + 10
        while True:
            listed = api.http.get(f"/api/v1/workflows/{wf['id']}/logs", headers=user["headers"]).json()["items"]
            if listed and listed[0]["status"] == "success":
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.1)


def test_a_graph_with_a_cycle_is_refused_at_save_time(api: Api):
    user = api.register()
    bad = {"nodes": [{"id": "t", "type": "manual"}, {"id": "a", "type": "transform", "config": {"value": 1}},
                     {"id": "b", "type": "transform", "config": {"value": 2}}],
           "connections": [{"from": "t", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}
    r = api.http.post("/api/v1/workflows", json={"name": "cycle", "definition": bad}, headers=user["headers"])
    assert r.status_code == 422
    assert r.json()["error"]["details"] == {
        "field": "definition.connections", "issue": "connections form a cycle: a -> b -> a",
        "errors": [{"field": "definition.connections", "issue": "connections form a cycle: a -> b -> a"}]}


def steps_by_key(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["node_id"] if s["iteration"] is None else f"{s['node_id']}[{s['iteration']}]": s for s in run["steps"]}


def test_a_failed_run_is_replayed_from_its_failed_step_after_the_fix(api: Api):
    user = api.register()
    h = user["headers"]
    with EchoServer() as echo:
        broken = {"nodes": [
            {"id": "start", "type": "manual"},
            {"id": "lookup", "type": "http_request", "config": {"url": f"{echo.url}/lookup", "method": "POST",
                                                                "body": "{{trigger.payload}}"}},
            {"id": "charge", "type": "http_request", "config": {"url": f"{echo.url}/status/500", "method": "POST",
                                                                "fail_on_status": True}},
        ]}
        wf = api.create_workflow(user, broken)
        r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={"order": 9}, headers=h)
        failed = api.wait_run(user, r.json()["execution_id"])
        assert failed["status"] == "failed"
        assert failed["error_message"].endswith("answered 500")

        fixed = {**broken, "nodes": [*broken["nodes"][:2], {**broken["nodes"][2], "config": {
            "url": f"{echo.url}/charge", "method": "POST", "body": "{{lookup.body.echo}}", "fail_on_status": True}}]}
        assert api.http.put(f"/api/v1/workflows/{wf['id']}", json={"definition": fixed}, headers=h).status_code == 200
        r = api.http.post(f"/api/v1/logs/{failed['id']}/replay", json={"from": "failed"}, headers=h)
        assert r.status_code == 202, r.text
        assert r.json()["replay_of"] == failed["id"]
        replay = api.wait_run(user, r.json()["execution_id"])

        assert replay["status"] == "success", replay["error_message"]
        assert replay["replay_of"] == failed["id"]
        steps = steps_by_key(replay)
        assert steps["lookup"]["output"] == steps_by_key(failed)["lookup"]["output"]  # recorded, not re-run
        assert steps["lookup"]["note"] == f"copied from execution {failed['id']}"
        assert steps["charge"]["output"]["body"]["echo"] == {"order": 9}
        assert [r["path"] for r in echo.requests] == ["/lookup", "/status/500", "/charge"]

        r = api.http.post(f"/api/v1/logs/{failed['id']}/replay", json={"from": "start"}, headers=h)
        assert r.status_code == 202
        again = api.wait_run(user, r.json()["execution_id"])
        assert again["status"] == "success"
        assert [r["path"] for r in echo.requests][-2:] == ["/lookup", "/charge"]

        other = api.register()
        r = api.http.post(f"/api/v1/logs/{failed['id']}/replay", json={}, headers=other["headers"])
        assert r.status_code == 404


def test_a_parked_run_is_cancelled_and_never_continues(api: Api):
    user = api.register()
    h = user["headers"]
    wf = api.create_workflow(user, {"nodes": [
        {"id": "start", "type": "manual"}, {"id": "wait", "type": "delay", "config": {"seconds": 3}},
        {"id": "after", "type": "transform", "config": {"value": 1}}]})
    r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={}, headers=h)
    execution_id = r.json()["execution_id"]
    api.wait_run(user, execution_id, until=lambda run: run["status"] == "waiting")

    r = api.http.post(f"/api/v1/logs/{execution_id}/cancel", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    time.sleep(3.5)  # past the delay
    run = api.wait_run(user, execution_id)
    steps = steps_by_key(run)
    assert run["status"] == "cancelled"
    assert steps["wait"]["status"] == "cancelled" and steps["after"]["status"] == "cancelled"


def test_a_running_run_is_paused_by_its_worker_and_resumed(api: Api):
    user = api.register()
    h = user["headers"]
    with EchoServer() as echo:
        wf = api.create_workflow(user, {"nodes": [
            {"id": "start", "type": "manual"},
            {"id": "slow", "type": "http_request", "config": {"url": f"{echo.url}/sleep/1/slow"}},
            {"id": "after", "type": "transform", "config": {"value": "{{slow.status}}"}}]})
        r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={}, headers=h)
        execution_id = r.json()["execution_id"]
        api.wait_run(user, execution_id, until=lambda run: run["status"] == "running" and any(
            s["node_id"] == "slow" and s["status"] == "running" for s in run["steps"]))

        r = api.http.post(f"/api/v1/logs/{execution_id}/pause", headers=h)
        assert r.status_code == 202, r.text  # the worker holds the run: it pauses at the next step
        assert r.json()["pending_action"] == "pause"
        paused = api.wait_run(user, execution_id, until=lambda run: run["status"] == "paused")
        assert steps_by_key(paused)["slow"]["status"] == "success"  # what was running finished
        assert steps_by_key(paused)["after"]["status"] == "pending"

        r = api.http.post(f"/api/v1/logs/{execution_id}/resume", headers=h)
        assert r.status_code == 200, r.text
        done = api.wait_run(user, execution_id)
        assert done["status"] == "success"
        assert steps_by_key(done)["after"]["output"] == 200
        assert len(echo.requests) == 1
