"""http_request nodes with a credential, on real Redis: the engine fetches the sealed record (the workflows
service's internal API, stood in for at the process boundary), opens it with its master key, applies it,
and no step record carries the value; a new value applies to the next run with no workflow change."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import orjson
import pytest
from services.engine.tests.factories import publish, queue_run, runtime

from automateos_common.runs import RunStatus, RunStore
from automateos_common.secretstore import DatabaseSecretStore, Keyring, new_master_key_text, parse_master_key
from automateos_engine.credentials import CredentialSource
from automateos_engine.executor import Executor

pytestmark = pytest.mark.integration

OWNER = 7
SECRET = "tok_live_abcdefghijklmnop"


class Workflows:
    """What the workflows service keeps: credential rows with sealed values, served on its internal API."""

    def __init__(self) -> None:
        self.store = DatabaseSecretStore(Keyring([parse_master_key(new_master_key_text())]))
        self.rows: dict[int, dict[str, Any]] = {}
        self.fetches = 0

    def put(self, cid: int, name: str, type_: str, public: dict[str, Any], secret: dict[str, Any],
            owner_id: int = OWNER) -> None:
        version = self.rows[cid]["version"] + 1 if cid in self.rows else 1
        self.rows[cid] = {"id": cid, "owner_id": owner_id, "name": name, "type": type_, "public": public,
                          "secret_ref": self.store.put(owner_id, cid, orjson.dumps(secret)), "version": version}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["x-automateos-internal"] == "secret"
        _, _, _, _, owner, ref = request.url.path.split("/")
        self.fetches += 1
        for row in self.rows.values():
            if str(row["owner_id"]) == owner and ref in (str(row["id"]), row["name"]):
                return httpx.Response(200, json=row)
        return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "Not found"}})

    def source(self, store: DatabaseSecretStore | None = None) -> CredentialSource:
        return CredentialSource("http://workflows.test", "secret", store or self.store,
                                client=httpx.Client(transport=httpx.MockTransport(self.handler)))


def definition(ref: Any, **config: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook"},
                      {"id": "a", "type": "http_request",
                       "config": {"url": "https://api.example.com/me", "credential": ref, **config}}]}


def echo(calls: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)  # an API that echoes what it was sent, headers and query included
        return httpx.Response(200, json={"headers": dict(request.headers), "url": str(request.url)},
                              headers={"x-echo": request.headers.get("authorization", "")})
    return handler


def run_once(redis, wf: Workflows, calls: list[httpx.Request], store: DatabaseSecretStore | None = None):
    queued = queue_run(redis, {"n": 1}, owner_id=OWNER)
    Executor(runtime(redis, echo(calls), credentials=wf.source(store))).execute(queued.id)
    run = RunStore(redis).load(queued.id)
    assert run is not None
    return run


def test_bearer_is_sent_and_no_record_of_the_run_holds_it(redis_client, audit_lines):
    wf = Workflows()
    wf.put(3, "github", "bearer", {}, {"token": SECRET})
    publish(redis_client, definition("github"), owner_id=OWNER)
    calls: list[httpx.Request] = []
    run = run_once(redis_client, wf, calls)
    assert run.status == RunStatus.SUCCESS, run.error_message
    assert calls[0].headers["authorization"] == f"Bearer {SECRET}"
    step = run.steps[1]
    assert step.output["body"]["headers"]["authorization"] == "Bearer <redacted>"
    assert step.output["headers"]["x-echo"] == "Bearer <redacted>"
    raw = b"".join(v for v in redis_client.hgetall(RunStore.key(run.id)).values())
    assert SECRET.encode() not in raw
    assert SECRET not in json.dumps(step.input) and SECRET not in json.dumps(step.output)
    # The engine's opening of the value is a security event of the owner's (without the value).
    (read,) = [e for e in audit_lines.events() if e["event"] == "credential.read"]
    assert read["user_id"] == OWNER and read["details"]["credential_id"] == 3 and read["details"]["name"] == "github"
    assert SECRET not in "\n".join(audit_lines.lines)


@pytest.mark.parametrize(("type_", "public", "secret", "check"), [
    ("basic", {"username": "alice"}, {"password": SECRET},
     lambda r: r.headers["authorization"] == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()),
    ("header", {"name": "X-Token"}, {"value": SECRET}, lambda r: r.headers["x-token"] == SECRET),
    ("api_key", {"location": "header", "name": "X-Api-Key"}, {"key": SECRET},
     lambda r: r.headers["x-api-key"] == SECRET),
    ("api_key", {"location": "query", "name": "api_key"}, {"key": SECRET},
     lambda r: r.url.params["api_key"] == SECRET and r.url.params["page"] == "2"),
])
def test_each_type_is_applied_and_redacted(redis_client, type_, public, secret, check):
    wf = Workflows()
    wf.put(4, "cred", type_, public, secret)
    publish(redis_client, definition(4, query={"page": 2}), owner_id=OWNER)
    calls: list[httpx.Request] = []
    run = run_once(redis_client, wf, calls)
    assert run.status == RunStatus.SUCCESS, run.error_message
    assert check(calls[0])
    assert SECRET not in json.dumps(run.steps[1].output)
    assert "<redacted>" in json.dumps(run.steps[1].output)


def test_a_new_value_applies_to_the_next_run_without_touching_the_workflow(redis_client):
    wf = Workflows()
    wf.put(3, "github", "bearer", {}, {"token": "first-token-value"})
    publish(redis_client, definition("github"), owner_id=OWNER)
    calls: list[httpx.Request] = []
    run_once(redis_client, wf, calls)
    wf.put(3, "github", "bearer", {}, {"token": "second-token-value"})  # PUT /api/v1/credentials/3
    run_once(redis_client, wf, calls)
    assert [c.headers["authorization"] for c in calls] == ["Bearer first-token-value", "Bearer second-token-value"]


def test_missing_or_unopenable_credentials_fail_the_step_without_the_value(redis_client):
    wf = Workflows()
    wf.put(3, "github", "bearer", {}, {"token": SECRET}, owner_id=8)  # another owner's
    publish(redis_client, definition("github"), owner_id=OWNER)
    calls: list[httpx.Request] = []
    run = run_once(redis_client, wf, calls)
    assert run.status == RunStatus.FAILED
    assert run.steps[1].error == "credential 'github' does not exist (deleted since the workflow was saved?)"
    wf.put(5, "github", "bearer", {}, {"token": SECRET})
    other_key = DatabaseSecretStore(Keyring([parse_master_key(new_master_key_text())]))
    run = run_once(redis_client, wf, calls, store=other_key)
    assert run.status == RunStatus.FAILED
    assert run.steps[1].error is not None and "cannot be opened" in run.steps[1].error
    assert SECRET not in run.steps[1].error
    assert calls == []


def test_oauth2_client_credentials_token_is_fetched_once_and_cached(redis_client):
    wf = Workflows()
    wf.put(9, "idp", "oauth2_client", {"client_id": "cid", "token_url": "https://idp.example/token",
                                       "scopes": ["read"]}, {"client_secret": SECRET})
    publish(redis_client, definition("idp"), owner_id=OWNER)
    calls: list[httpx.Request] = []
    tokens: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "idp.example":
            tokens.append(request)
            return httpx.Response(200, json={"access_token": "at-issued-by-idp-123", "expires_in": 3600})
        return echo(calls)(request)

    for _ in range(2):
        queued = queue_run(redis_client, {"n": 1}, owner_id=OWNER)
        Executor(runtime(redis_client, handler, credentials=wf.source())).execute(queued.id)
        run = RunStore(redis_client).load(queued.id)
        assert run is not None and run.status == RunStatus.SUCCESS, run and run.error_message
        assert "at-issued-by-idp-123" not in json.dumps(run.steps[1].output)
    assert len(tokens) == 1
    assert tokens[0].headers["authorization"] == "Basic " + base64.b64encode(f"cid:{SECRET}".encode()).decode()
    assert dict(httpx.QueryParams(tokens[0].content.decode())) == {"grant_type": "client_credentials",
                                                                   "scope": "read"}
    assert [c.headers["authorization"] for c in calls] == ["Bearer at-issued-by-idp-123"] * 2
