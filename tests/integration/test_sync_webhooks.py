"""Sync webhooks through the gateway, every service a real process: the engine announces the run's end,
the ingress answers the waiting request with the chosen node's output (or 202 at the timeout)."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.integration.helpers import Api

pytestmark = pytest.mark.integration


def _workflow(echo_url: str, response: dict, *, delay_s: float | None = None, fail: bool = False) -> dict:
    nodes: list[dict] = [
        {"id": "hook", "type": "webhook", "config": {"method": "POST", "response": response}},
        {"id": "call", "type": "http_request",
         "config": {"url": f"{echo_url}/{'status/500' if fail else 'data'}", "method": "POST",
                    "body": "{{trigger.payload}}", "fail_on_status": fail}},
        {"id": "shape", "type": "transform", "config": {"value": {"got": "{{call.body.echo}}", "n": 1}}},
    ]
    if delay_s is not None:
        nodes.insert(1, {"id": "wait", "type": "delay", "config": {"seconds": delay_s}})
    return {"nodes": nodes}


def test_a_sync_webhook_answers_with_the_chosen_nodes_output(api: Api, echo_server):
    user = api.register()
    wf = api.create_workflow(user, _workflow(echo_server.url, {"mode": "sync", "node": "shape", "timeout_s": 20,
                                                               "status_code": 201}))
    started = time.monotonic()
    r = httpx.post(wf["webhook_url"], json={"order": 42}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json() == {"got": {"order": 42}, "n": 1}
    assert time.monotonic() - started < 10  # the announcement answered it, not the timeout
    execution_id = r.headers["x-execution-id"]
    assert r.headers["location"] == f"/api/v1/logs/{execution_id}"
    run = api.wait_run(user, execution_id)
    assert run["status"] == "success" and run["steps"][-1]["output"] == r.json()

    # Without `node`: the run's result, as the history shows it.
    wf2 = api.create_workflow(user, _workflow(echo_server.url, {"mode": "sync", "timeout_s": 20}))
    r = httpx.post(wf2["webhook_url"], json={"x": "y"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == api.wait_run(user, r.headers["x-execution-id"])["result"] == {"got": {"x": "y"}, "n": 1}


def test_a_failed_run_is_a_502_in_the_envelope(api: Api, echo_server):
    user = api.register()
    wf = api.create_workflow(user, _workflow(echo_server.url, {"mode": "sync", "node": "call", "timeout_s": 20},
                                             fail=True))
    r = httpx.post(wf["webhook_url"], json={}, timeout=30)
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "RUN_FAILED"
    assert err["details"] == {"execution_id": r.headers["x-execution-id"], "status": "failed"}
    assert err["message"].startswith("The run failed")


def test_a_run_longer_than_the_timeout_answers_202(api: Api, echo_server):
    user = api.register()
    # 3 s: longer than the inline delay (2 s), so the run parks: announced `waiting`, answered at once.
    wf = api.create_workflow(user, _workflow(echo_server.url, {"mode": "sync", "timeout_s": 1}, delay_s=3))
    started = time.monotonic()
    r = httpx.post(wf["webhook_url"], json={}, timeout=30)
    assert r.status_code == 202, r.text
    assert time.monotonic() - started < 5
    body = r.json()
    assert body["execution_id"] == r.headers["x-execution-id"]
    assert body["status"] in ("queued", "running", "waiting")
    assert api.wait_run(user, body["execution_id"])["status"] == "success"


def test_response_node_must_name_a_node_of_the_definition(api: Api, echo_server):
    user = api.register()
    r = api.http.post("/api/v1/workflows", headers=user["headers"], json={
        "name": "wf", "definition": _workflow(echo_server.url, {"mode": "sync", "node": "nope"})})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "definition.nodes[0].config.response.node"
