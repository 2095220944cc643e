"""Security events across the stack (processes behind the gateway, PostgreSQL, Redis): what workflows and
the ingress emit reaches auth's table through the stream, and the owner lists it; the log lines are JSON."""

from __future__ import annotations

import json
import time

import pytest
from tests.integration.helpers import Api

from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def events(api: Api, user: dict, until: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        r = api.http.get("/api/v1/users/me/events", headers=user["headers"])
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        if len(items) >= until or time.monotonic() > deadline:
            return list(items)
        time.sleep(0.1)


def test_probes_of_someone_elses_workflow_are_listed_to_its_owner(api, pg_stack):
    ada, bob = api.register(), api.register()
    wf = api.create_workflow(ada, example_definition())
    probe = {**bob["headers"], "X-Request-ID": f"probe-{wf['id']}"}
    r = api.http.get(f"/api/v1/workflows/{wf['id']}", headers=probe)
    assert (r.status_code, r.headers["x-request-id"]) == (404, f"probe-{wf['id']}")
    assert api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={}, headers=probe).status_code == 404

    listed = events(api, ada, until=4)
    assert [(e["event"], e["service"]) for e in listed] == [
        ("access.denied", "ingress"), ("access.denied", "workflows"), ("login.succeeded", "auth"),
        ("user.registered", "auth")]
    for e in listed[:2]:
        assert e["details"] == {"resource": "workflow", "resource_id": wf["id"], "actor_user_id": bob["id"],
                                "method": e["details"]["method"]}
        assert e["request_id"] == f"probe-{wf['id']}"
    # Bob's own list does not tell him that the workflow exists.
    assert [e["event"] for e in events(api, bob, until=2)] == ["login.succeeded", "user.registered"]

    # Each service wrote the same events as JSON lines, and no password or token.
    assert pg_stack.log_dir is not None
    lines = []
    for name in ("auth", "workflows", "ingress"):
        text = (pg_stack.log_dir / f"{name}.log").read_text()
        assert ada["password"] not in text and ada["token"] not in text and bob["token"] not in text
        lines += [json.loads(line) for line in text.splitlines() if line.startswith('{"id":')]
    ids = {e["id"] for e in lines}
    assert {e["id"] for e in listed} <= ids
