"""Webhook authentication through the whole stack (gateway, workflows, ingress, engine as processes): an
HMAC-protected webhook's signed delivery runs, an unsigned one is 401 and starts nothing, a rotated
secret applies right after the update, a deleted credential fails closed, and no log holds the secret."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
from tests.integration.helpers import Api

pytestmark = pytest.mark.integration

FIRST, SECOND = "e2e-hook-secret-0123456789", "e2e-hook-secret-9876543210"


def signed(secret: str, body: bytes, delivery: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}


def test_an_hmac_protected_webhook_runs_rotates_and_fails_closed(api: Api, pg_stack):
    user, other = api.register(), api.register()
    r = api.http.post("/api/v1/credentials", json={"name": "gh-hook", "type": "webhook_secret",
                                                   "data": {"secret": FIRST}}, headers=user["headers"])
    assert r.status_code == 201, r.text
    cred = r.json()
    auth = {"type": "hmac", "credential": "gh-hook"}
    trigger = {"id": "t", "type": "webhook", "config": {"auth": auth, "dedup": {"header": "X-GitHub-Delivery"}}}
    step = {"id": "echo", "type": "transform", "config": {"value": "{{trigger.payload.n}}"}}
    # Someone else's credential, or one of a type that cannot verify, is refused at save time.
    for who, a in ((other, auth), (user, {**auth, "type": "basic"})):
        r = api.http.post("/api/v1/workflows", headers=who["headers"],
                          json={"name": "x", "definition": {"nodes": [{**trigger, "config": {"auth": a}}]}})
        assert r.status_code == 422
        assert r.json()["error"]["details"]["field"] == "definition.nodes[0].config.auth.credential"
    wf = api.create_workflow(user, {"nodes": [trigger, step], "connections": [{"from": "t", "to": "echo"}]})
    shown = api.http.get(f"/api/v1/credentials/{cred['id']}", headers=user["headers"]).json()
    assert shown["used_by"] == [{"id": wf["id"], "name": "wf"}]

    body = b'{"n": 42}'
    refused = httpx.post(wf["webhook_url"], content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
    ok = httpx.post(wf["webhook_url"], content=body, headers=signed(FIRST, body, "d-1"))
    assert ok.status_code == 202, ok.text
    run = api.wait_run(user, ok.json()["execution_id"])
    assert run["status"] == "success" and run["result"] is not None, run
    again = httpx.post(wf["webhook_url"], content=body, headers=signed(FIRST, body, "d-1"))
    assert again.status_code == 200 and again.json()["execution_id"] == run["id"]
    assert again.json()["duplicate"] is True

    r = api.http.put(f"/api/v1/credentials/{cred['id']}", json={"data": {"secret": SECOND}}, headers=user["headers"])
    assert r.status_code == 200
    assert httpx.post(wf["webhook_url"], content=body, headers=signed(FIRST, body, "d-2")).status_code == 401
    rotated = httpx.post(wf["webhook_url"], content=body, headers=signed(SECOND, body, "d-3"))
    assert rotated.status_code == 202
    assert api.wait_run(user, rotated.json()["execution_id"])["status"] == "success"

    assert api.http.delete(f"/api/v1/credentials/{cred['id']}?force=true", headers=user["headers"]).status_code == 204
    assert httpx.post(wf["webhook_url"], content=body, headers=signed(SECOND, body, "d-4")).status_code == 401
    runs = api.http.get(f"/api/v1/workflows/{wf['id']}/logs", headers=user["headers"]).json()
    assert runs["total"] == 2  # the refused and duplicate deliveries started nothing

    logs = "\n".join(p.read_text(errors="replace") for p in sorted(pg_stack.log_dir.glob("*.log")))
    assert "refused: hmac authentication: signature mismatch" in logs
    assert "its credential is missing" in logs
    for text in (logs, str(shown)):
        assert FIRST not in text and SECOND not in text
