"""Another tenant's workflow or run answers exactly like a missing one (404), and is recorded as the
security event `access.denied` of the resource's owner: a JSON line on `automateos.audit` and an entry
on the Redis stream `aos:audit` (which auth records; see services/auth's test_security_events). A
missing resource records nothing. Real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from services.workflows.tests.factories import definition

from automateos_common import audit
from automateos_common.jsonutil import loads
from automateos_common.runs import RunStatus

pytestmark = pytest.mark.integration

OWNER, OTHER = 1, 2


@pytest.fixture
def audit_lines() -> Iterator[list[dict]]:
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(loads(record.getMessage()))

    handler = Collect()
    logger = logging.getLogger("automateos.audit")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def streamed(redis) -> list[dict]:
    assert audit.flush(10)
    return [loads(fields[b"e"]) for _, fields in redis.xrange(audit.STREAM)]


def test_someone_elses_workflow_and_run_are_404_and_audited_for_their_owner(service, audit_lines):
    wf = service.create_workflow(OWNER, definition())
    run = service.put_run(wf, OWNER, RunStatus.SUCCESS)
    missing_wf = service.client.get("/api/v1/workflows/999999", headers=service.headers(OTHER))
    missing_run = service.client.get("/api/v1/logs/no-such-run", headers=service.headers(OTHER))
    assert audit_lines == []  # nothing exists there: nothing to report
    answers = [
        service.client.get(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OTHER)),
        service.client.put(f"/api/v1/workflows/{wf['id']}", json={"name": "x"}, headers=service.headers(OTHER)),
        service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OTHER)),  # live, in Redis
    ]
    service.record()
    service.expire(run.id)
    answers.append(service.client.get(f"/api/v1/logs/{run.id}", headers=service.headers(OTHER)))  # database
    # The very answers a missing resource gets.
    for r, missing in zip(answers, (missing_wf, missing_wf, missing_run, missing_run), strict=True):
        assert (r.status_code, r.json()) == (missing.status_code, missing.json())
        assert r.status_code == 404
    assert [(e["event"], e["user_id"], e["service"], e["details"]) for e in audit_lines] == [
        ("access.denied", OWNER, "workflows", {"resource": "workflow", "resource_id": wf["id"],
                                               "actor_user_id": OTHER, "method": "GET"}),
        ("access.denied", OWNER, "workflows", {"resource": "workflow", "resource_id": wf["id"],
                                               "actor_user_id": OTHER, "method": "PUT"}),
        ("access.denied", OWNER, "workflows", {"resource": "execution", "resource_id": run.id,
                                               "actor_user_id": OTHER, "method": "GET"}),
        ("access.denied", OWNER, "workflows", {"resource": "execution", "resource_id": run.id,
                                               "actor_user_id": OTHER, "method": "GET"}),
    ]
    assert all(e["request_id"] and e["ip"] == "127.0.0.1" for e in audit_lines)
    # On the stream for auth to record, with the same ids.
    assert [e["id"] for e in streamed(service.redis)] == [e["id"] for e in audit_lines]
    # The owner's own requests are not events.
    assert service.client.get(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OWNER)).status_code == 200
    assert len(audit_lines) == 4


def test_a_rejected_token_is_audited_in_every_service(service, audit_lines):
    r = service.client.get("/api/v1/workflows", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    [line] = audit_lines
    assert (line["event"], line["user_id"], line["service"], line["details"]) == (
        "token.rejected", None, "workflows", {"reason": "malformed"})
    assert "not-a-jwt" not in str(line)
    assert streamed(service.redis) == []  # no user: logged only, never listed, never sent
