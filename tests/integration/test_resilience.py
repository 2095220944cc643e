"""Auth restarts without breaking token checks elsewhere; no secret reaches a log."""

from __future__ import annotations

import httpx
import pytest
from tests.integration.helpers import Api

from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def test_other_services_keep_verifying_tokens_across_an_auth_restart(api: Api, pg_stack, echo_server):
    user = api.register()
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"))
    execute = f"/api/v1/workflows/{wf['id']}/execute"
    # Both verifying services have fetched and cached the JWKS by now.
    assert api.http.get("/api/v1/workflows", headers=user["headers"]).status_code == 200
    assert api.http.post(execute, json={}, headers=user["headers"]).status_code == 202

    pg_stack.stop("auth")
    try:
        assert api.http.get("/api/v1/auth/jwks.json").status_code == 502  # auth is really down
        assert api.http.get("/api/v1/workflows", headers=user["headers"]).status_code == 200
        assert api.http.post(execute, json={}, headers=user["headers"]).status_code == 202
    finally:
        pg_stack.start("auth")
        pg_stack.wait_healthy("auth")

    # Same key from the data folder: a token from the restarted auth is accepted everywhere.
    fresh = {"Authorization": f"Bearer {api.login(user['email'], user['password'])}"}
    assert api.http.get("/api/v1/users/me", headers=fresh).status_code == 200
    assert api.http.get("/api/v1/workflows", headers=fresh).json()["total"] == 1
    assert api.http.post(execute, json={}, headers=fresh).status_code == 202


def test_no_secret_reaches_the_logs(api: Api, pg_stack, echo_server):
    password = "a distinctive passphrase 4711"
    user = api.register(password=password)
    wf = api.create_workflow(user, example_definition(f"{echo_server.url}/x"))
    token = wf["webhook_url"].rsplit("/", 1)[1]
    run_id = httpx.post(wf["webhook_url"], json={}).json()["execution_id"]
    api.wait_run(user, run_id)
    httpx.post(f"{api.base_url}/hooks/{token}-wrong", json={})  # a 404 is logged too
    # A session's refresh tokens: refreshed, one reused (the session is revoked), logged out.
    first = api.http.post("/api/v1/auth/token", data={"username": user["email"], "password": password}).json()
    second = api.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert api.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert api.http.post("/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]}).status_code == 204
    refresh_tokens = [first["refresh_token"], second["refresh_token"]]

    logs = "\n".join(p.read_text(errors="replace") for p in sorted(pg_stack.log_dir.glob("*.log")))
    assert "POST /hooks/<redacted>" in logs  # the access log ran, with the token masked
    assert "--- Logging error ---" not in logs  # and redaction did not break a formatter
    internal = pg_stack.env.get("AUTOMATEOS_INTERNAL_TOKEN") or (pg_stack.data_dir / "internal-token").read_text()
    for secret in (token, password, user["token"], internal.strip(), "PRIVATE KEY", *refresh_tokens):
        assert secret not in logs
