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
