"""Credentials through the whole stack (gateway, workflows, engine as their own processes): a workflow's
http_request node sends the credential, a new value applies to the next run with no workflow change, and
neither run history nor any service's log ever holds a value."""

from __future__ import annotations

import httpx
import pytest
from tests.integration.helpers import Api

pytestmark = pytest.mark.integration

FIRST, SECOND = "e2e-first-token-0123456789", "e2e-second-token-9876543210"


def test_a_credential_is_sent_rotated_and_never_shown(api: Api, pg_stack, echo_server):
    user, other = api.register(), api.register()
    r = api.http.post("/api/v1/credentials", json={"name": "svc", "type": "bearer", "data": {"token": FIRST}},
                      headers=user["headers"])
    assert r.status_code == 201, r.text
    cred = r.json()
    assert cred["hint"] == "****6789"
    assert api.http.get(f"/api/v1/credentials/{cred['id']}", headers=other["headers"]).status_code == 404
    wf = api.create_workflow(user, {"nodes": [
        {"id": "t", "type": "webhook"},
        {"id": "call", "type": "http_request", "config": {"url": f"{echo_server.url}/cred", "credential": "svc"}}]})

    def run_and_seen() -> tuple[dict, str]:
        run_id = httpx.post(wf["webhook_url"], json={}).json()["execution_id"]
        run = api.wait_run(user, run_id)
        assert run["status"] == "success", run
        seen = [r for r in echo_server.requests if r["path"] == "/cred"][-1]
        return run, seen["headers"].get("Authorization") or seen["headers"].get("authorization")

    run, auth = run_and_seen()
    assert auth == f"Bearer {FIRST}"
    r = api.http.put(f"/api/v1/credentials/{cred['id']}", json={"data": {"token": SECOND}}, headers=user["headers"])
    assert r.status_code == 200
    run2, auth = run_and_seen()
    assert auth == f"Bearer {SECOND}"

    shown = api.http.get(f"/api/v1/credentials/{cred['id']}", headers=user["headers"])
    assert shown.json()["used_by"] == [{"id": wf["id"], "name": "wf"}]
    history = [api.http.get(f"/api/v1/logs/{r['id']}", headers=user["headers"]).text for r in (run, run2)]
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(pg_stack.log_dir.glob("*.log")))
    for text in (*history, shown.text, logs):
        assert FIRST not in text and SECOND not in text
