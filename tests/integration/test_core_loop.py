"""The core loop through the gateway, with every service a real process on PostgreSQL and Redis.

register -> log in -> create API.md's example -> POST its webhook -> 202 at once -> the run,
its steps and their outputs in the history (first from Redis, then from the database).
"""

from __future__ import annotations

import time

import httpx
import pytest
from redis import Redis
from tests.integration.helpers import Api

from automateos_common import catalog
from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def test_api_example_end_to_end(api: Api, echo_server, pg_stack):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/data"))
    assert wf["webhook_url"].startswith(f"{pg_stack.gateway_url}/hooks/")
    token = wf["webhook_url"].rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits, URL-safe base64

    r = httpx.post(wf["webhook_url"], json={"order": 42, "items": ["a", "b"]}, params={"src": "test"})
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "queued"
    assert r.headers["location"] == f"/api/v1/logs/{body['execution_id']}"

    # Found from the moment the 202 is sent.
    first = api.http.get(f"/api/v1/logs/{body['execution_id']}", headers=user["headers"])
    assert first.status_code == 200
    assert first.json()["status"] in ("queued", "running", "success")

    run = api.wait_run(user, body["execution_id"])
    assert run["status"] == "success", run
    assert run["workflow_id"] == wf["id"]
    assert run["trigger"] == "webhook"
    assert run["payload"] == {"order": 42, "items": ["a", "b"]}
    assert run["error_message"] is None
    assert [(s["node_id"], s["type"], s["status"]) for s in run["steps"]] == [
        ("trigger-1", "webhook", "success"), ("action-1", "http_request", "success"), ("filter-1", "filter", "success")]
    trigger, action, flt = run["steps"]
    assert trigger["output"]["query"] == {"src": "test"}
    assert "authorization" not in trigger["output"]["headers"]
    assert action["input"] == trigger["output"]
    assert action["output"]["status"] == 200
    assert action["output"]["body"] == {"echo": {"order": 42, "items": ["a", "b"]}, "method": "POST", "path": "/data"}
    assert flt["note"] == "condition true; continued"
    assert run["result"] == action["output"]
    assert run["duration_ms"] >= 0 and run["started_at"] and run["completed_at"]
    assert all(s["attempts"] == 1 and s["error"] is None for s in run["steps"])

    # The stack keeps finished runs in Redis for 2 s; after that the database answers, identically.
    redis = Redis.from_url(pg_stack.env["REDIS_URL"])
    deadline = time.monotonic() + 15
    while redis.exists(f"aos:run:{body['execution_id']}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis.exists(f"aos:run:{body['execution_id']}") == 0
    from_db = api.http.get(f"/api/v1/logs/{body['execution_id']}", headers=user["headers"]).json()
    assert from_db == run

    runs = api.http.get(f"/api/v1/workflows/{wf['id']}/logs", headers=user["headers"]).json()
    assert runs["total"] == 1
    assert runs["items"][0]["id"] == body["execution_id"]
    assert runs["items"][0]["status"] == "success"


def test_filter_stop_and_node_failure_are_recorded(api: Api, echo_server):
    user = api.register()
    definition = example_definition(f"{echo_server.url}/status/503")
    wf = api.create_workflow(user, definition)
    run = api.wait_run(user, httpx.post(wf["webhook_url"], json={}).json()["execution_id"])
    assert run["status"] == "success"  # the filter stopped it: a successful run
    assert run["steps"][2]["note"] == "condition false; run stopped here"

    definition["nodes"][1]["config"]["fail_on_status"] = True
    r = api.http.put(f"/api/v1/workflows/{wf['id']}", json={"definition": definition}, headers=user["headers"])
    assert r.status_code == 200
    run = api.wait_run(user, httpx.post(wf["webhook_url"], json={}).json()["execution_id"])
    assert run["status"] == "failed"
    assert run["error_message"] == f"node 'action-1' failed: POST {echo_server.url}/status/503 answered 503"
    assert [s["status"] for s in run["steps"]] == ["success", "failed", "skipped"]


def test_egress_guard_refuses_loopback_not_allowed(api: Api, echo_server):
    user = api.register()
    # The stack allows 127.0.0.1 only; 127.0.0.2 is loopback too, and refused.
    wf = api.create_workflow(user, example_definition(f"http://127.0.0.2:{echo_server.port}/data"))
    run = api.wait_run(user, httpx.post(wf["webhook_url"], json={}).json()["execution_id"])
    assert run["status"] == "failed"
    error = run["steps"][1]["error"]
    assert "127.0.0.2 (loopback)" in error
    assert "AUTOMATEOS_EGRESS_ALLOW" in error


def test_manual_execute(api: Api, echo_server):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/m"), is_active=False)
    r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={"manual": True}, headers=user["headers"])
    assert r.status_code == 202
    run = api.wait_run(user, r.json()["execution_id"])
    assert (run["trigger"], run["payload"], run["status"]) == ("manual", {"manual": True}, "success")
    assert "authorization" not in run["steps"][0]["output"]["headers"]  # the caller's JWT is not workflow data

    r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", content=b"{nope",
                      headers={**user["headers"], "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "body"
    r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", headers=user["headers"])
    assert r.status_code == 202  # no body: {} as payload
    assert api.wait_run(user, r.json()["execution_id"])["payload"] == {}


def test_webhook_errors(api: Api, echo_server):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"), is_active=False)

    r = httpx.post(f"{api.base_url}/hooks/not-a-real-token", json={})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
    r = httpx.post(wf["webhook_url"], json={})
    assert r.status_code == 404  # inactive

    api.http.put(f"/api/v1/workflows/{wf['id']}", json={"is_active": True}, headers=user["headers"])
    assert httpx.post(wf["webhook_url"], json={}).status_code == 202

    big = b"x" * (1024 * 1024 + 1)
    r = httpx.post(wf["webhook_url"], content=big, headers={"Content-Type": "text/plain"})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert httpx.post(wf["webhook_url"], content=big[:-1], headers={"Content-Type": "text/plain"}).status_code == 202

    assert api.http.delete(f"/api/v1/workflows/{wf['id']}", headers=user["headers"]).status_code == 204
    assert httpx.post(wf["webhook_url"], json={}).status_code == 404


def test_webhook_still_resolves_when_redis_lost_the_catalog(api: Api, echo_server, pg_stack):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"))
    token = wf["webhook_url"].rsplit("/", 1)[1]
    redis = Redis.from_url(pg_stack.env["REDIS_URL"])
    redis.delete(catalog.READY_KEY, catalog.HOOK_KEY.format(token), catalog.WF_KEY.format(wf["id"]))

    r = httpx.post(wf["webhook_url"], json={"after": "loss"})
    assert r.status_code == 202  # resolved through the workflows service
    assert api.wait_run(user, r.json()["execution_id"])["status"] == "success"
    assert redis.get(catalog.HOOK_KEY.format(token)) == f"{wf['id']}:{user['id']}:POST".encode()  # republished
    # While the catalog is incomplete, an unknown token is still a clean 404.
    assert httpx.post(f"{api.base_url}/hooks/unknown-token", json={}).status_code == 404


def test_accepted_run_waits_queued_while_no_worker_runs_and_completes_after(api: Api, echo_server, pg_stack):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/later"))
    pg_stack.stop("engine")
    try:
        ids = [httpx.post(wf["webhook_url"], json={"n": i}).json()["execution_id"] for i in range(3)]
        for execution_id in ids:
            run = api.http.get(f"/api/v1/logs/{execution_id}", headers=user["headers"]).json()
            assert (run["status"], run["steps"], run["started_at"]) == ("queued", [], None)
        time.sleep(1.5)  # the recorder has written them to the database by now
        listed = api.http.get(f"/api/v1/workflows/{wf['id']}/logs", headers=user["headers"]).json()
        assert listed["total"] == 3
        assert [r["id"] for r in listed["items"]] == ids[::-1]  # newest first
        assert {r["status"] for r in listed["items"]} == {"queued"}
    finally:
        pg_stack.start("engine")
        pg_stack.wait_healthy("engine")
    runs = [api.wait_run(user, execution_id) for execution_id in ids]
    assert [r["status"] for r in runs] == ["success"] * 3
    assert [r["payload"] for r in runs] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_webhook_answers_to_the_method_its_node_names(api: Api, echo_server):
    user = api.register()
    definition = example_definition(f"{echo_server.url}/get")
    definition["nodes"][0]["config"]["method"] = "GET"
    definition["nodes"][1]["config"]["body"] = "{{trigger.query}}"
    wf = api.create_workflow(user, definition)

    r = httpx.post(wf["webhook_url"], json={})
    assert (r.status_code, r.json()["error"]["code"], r.headers["allow"]) == (405, "METHOD_NOT_ALLOWED", "GET")
    r = httpx.get(wf["webhook_url"], params={"ref": "main", "tag": ["a", "b"]})
    assert r.status_code == 202
    run = api.wait_run(user, r.json()["execution_id"])
    assert run["status"] == "success"
    assert run["payload"] is None
    assert run["steps"][0]["output"]["method"] == "GET"
    assert run["steps"][1]["output"]["body"]["echo"] == {"ref": "main", "tag": ["a", "b"]}
