"""Security events: a JSON line on `automateos.audit` for each, and, through the Redis stream `aos:audit` and
the auth service's consumer, the owner's `GET /api/v1/users/me/events`. Real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from services.auth.tests.factories import CLIENT_IP, AuthClient

from automateos_auth.events import EventRecorder
from automateos_common import audit
from automateos_common.jsonutil import utcnow

pytestmark = pytest.mark.integration

PASSWORD = "Tr0ub4dor&3-known-password"
OTHER_PASSWORD = "a-wrong-known-password-41"


def record(auth: AuthClient) -> int:
    """Send what this process emitted, then run the consumer over the stream."""
    assert audit.flush(10)
    return EventRecorder(auth.app.state.engine, auth.app.state.redis_for_tests).drain()


@pytest.fixture
def auth(make_auth, redis_client) -> AuthClient:
    client = make_auth(audit_recorder_enabled=False)  # the test runs the consumer itself
    client.app.state.redis_for_tests = redis_client
    return client


def user(auth: AuthClient, email: str) -> dict:
    r = auth.register(email, password=PASSWORD)
    assert r.status_code == 201, r.text
    body = auth.login(email, password=PASSWORD).json()
    return {"id": r.json()["id"], "headers": {"Authorization": f"Bearer {body['access_token']}"}, **body}


def events_of(auth: AuthClient, u: dict, **params: object) -> dict:
    r = auth.get("/api/v1/users/me/events", headers=u["headers"], params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_events_are_logged_as_json_and_listed_to_their_owner_only(auth, audit_lines):
    ada = user(auth, "ada@example.com")
    bob = user(auth, "bob@example.com")
    assert auth.login("ADA@example.com", password=OTHER_PASSWORD).status_code == 401
    assert record(auth) == 5  # 2 registered, 2 logins, 1 failure (of an existing account)

    listed = events_of(auth, ada)
    assert listed["total"] == 3
    # Newest first; exactly the contract's keys.
    assert [e["event"] for e in listed["items"]] == ["login.failed", "login.succeeded", "user.registered"]
    failed, succeeded, registered = listed["items"]
    assert set(failed) == {"id", "event", "at", "ip", "request_id", "service", "details"}
    assert failed["details"] == {"reason": "bad_password"}
    assert succeeded["details"] == registered["details"] == {"email": "ada@example.com"}
    assert {e["ip"] for e in listed["items"]} == {CLIENT_IP}
    assert {e["service"] for e in listed["items"]} == {"auth"}
    assert failed["at"].endswith("Z") and failed["at"] >= succeeded["at"] >= registered["at"]
    # Bob sees his own two, none of Ada's.
    assert [e["event"] for e in events_of(auth, bob)["items"]] == ["login.succeeded", "user.registered"]

    # The same event in the log: one JSON line each, with the id the API lists.
    by_id = {e["id"]: e for e in audit_lines.events()}
    line = by_id[failed["id"]]
    assert line == {**failed, "user_id": ada["id"]}
    assert len(audit_lines.lines) == 5

    # Paging.
    page = events_of(auth, ada, limit=1, offset=1)
    assert (page["total"], [e["id"] for e in page["items"]]) == (3, [succeeded["id"]])
    r = auth.get("/api/v1/users/me/events", headers=ada["headers"], params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "limit"


def test_the_list_needs_a_token(auth):
    r = auth.get("/api/v1/users/me/events")
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "UNAUTHORIZED", "message": "Not authenticated"}}


def test_no_secret_reaches_the_log_or_the_list(auth, audit_lines):
    ada = user(auth, "ada@example.com")
    # A password typed into the email field, for an account that does not exist.
    assert auth.login(PASSWORD, password=PASSWORD).status_code == 401
    assert auth.login("ada@example.com", password=OTHER_PASSWORD).status_code == 401
    first = ada["refresh_token"]
    assert auth.refresh(first).status_code == 200
    assert auth.refresh(first).status_code == 401  # a reuse: the session is revoked
    tampered = ada["access_token"][:-4] + ("AAAA" if not ada["access_token"].endswith("AAAA") else "BBBB")
    assert auth.get("/api/v1/users/me/events", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    record(auth)
    listed = auth.get("/api/v1/users/me/events", headers=ada["headers"]).text
    text = "\n".join(audit_lines.lines)
    for secret in (PASSWORD, OTHER_PASSWORD, first, ada["access_token"], tampered, ada["access_token"][-20:]):
        assert secret not in text
        assert secret not in listed
    unknown = next(e for e in audit_lines.events() if e["details"].get("reason") == "unknown_account")
    assert unknown["user_id"] is None and len(unknown["details"]["account"]) == 16
    # The same unknown name gives the same reference (attempts correlate), which is not its plain hash.
    assert auth.login(PASSWORD, password="whatever-else").status_code == 401
    refs = [e["details"]["account"] for e in audit_lines.events() if e["details"].get("reason") == "unknown_account"]
    assert refs == [unknown["details"]["account"]] * 2
    # A secret handed to emit() by mistake is redacted by key and by shape.
    audit.emit("login.failed", user_id=None, password=PASSWORD, note=f"Bearer {ada['access_token']}",
               refresh=first, raw=ada["access_token"])
    last = audit_lines.events()[-1]["details"]
    assert last["password"] == "<redacted>"
    for value in (last["note"], last["refresh"], last["raw"]):
        assert "<redacted>" in value and ada["access_token"] not in value and first not in value


def test_refresh_reuse_and_rejected_tokens(auth, audit_lines):
    ada = user(auth, "ada@example.com")
    first = ada["refresh_token"]
    assert auth.refresh(first).status_code == 200
    assert auth.refresh(first).status_code == 401
    keys = auth.app.state.key_ring.current
    now = utcnow()

    def signed(**claims: object) -> str:
        base = {"sub": str(ada["id"]), "iss": auth.settings.jwt_issuer, "aud": auth.settings.jwt_audience,
                "iat": now, "exp": now + timedelta(minutes=5)}
        return jwt.encode({**base, **claims}, keys.private_key, algorithm="RS256", headers={"kid": keys.kid})

    expired = signed(iat=now - timedelta(hours=2), exp=now - timedelta(hours=1))
    wrong_aud = signed(aud="someone-else")
    forged = jwt.encode({"sub": str(ada["id"]), "exp": now + timedelta(minutes=5)}, "x" * 32, algorithm="HS256",
                        headers={"kid": keys.kid})
    for token, message in ((expired, "Token expired"), (wrong_aud, "Invalid token"), (forged, "Invalid token")):
        r = auth.me(token)
        assert r.status_code == 401 and r.json()["error"]["message"] == message
    record(auth)
    items = events_of(auth, ada)["items"]
    assert [(e["event"], e["details"]) for e in items[:3]] == [
        ("token.rejected", {"reason": "wrong_audience"}),
        ("token.rejected", {"reason": "expired"}),
        ("refresh_token.reused", {"session_id": items[2]["details"]["session_id"], "revoked": 2}),
    ]
    assert len(items[2]["details"]["session_id"]) == 32
    # A forged token is logged (with its reason) but listed nowhere: its `sub` is the forger's choice.
    [line] = [e for e in audit_lines.events() if e["details"].get("reason") == "alg_not_allowed"]
    assert (line["event"], line["user_id"], line["details"]) == ("token.rejected", None,
                                                                   {"reason": "alg_not_allowed", "alg": "HS256"})
    assert "alg_not_allowed" not in str(items)


def test_request_ids(auth, audit_lines):
    r = auth.register("ada@example.com", password=PASSWORD, headers={"X-Request-ID": "req-42.a_b"})
    assert r.headers["x-request-id"] == "req-42.a_b"
    r = auth.login("ada@example.com", password=PASSWORD, headers={"X-Request-ID": "bad id; drop table" + "x" * 200})
    made = r.headers["x-request-id"]
    assert len(made) == 32 and made.isalnum()
    assert [e["request_id"] for e in audit_lines.events()] == ["req-42.a_b", made]
    # Errors carry one too.
    assert len(auth.get("/api/v1/users/me").headers["x-request-id"]) == 32


def test_recording_is_idempotent(auth, redis_client):
    ada = user(auth, "ada@example.com")
    assert audit.flush(10)
    [(entry_id, fields)] = [(i, f) for i, f in redis_client.xrange(audit.STREAM) if b"login.succeeded" in f[b"e"]]
    redis_client.xadd(audit.STREAM, fields)  # the same event again (a sender that retried a batch)
    assert record(auth) == 2  # registered + login; the copy is not a row of its own
    assert record(auth) == 0
    assert events_of(auth, ada)["total"] == 2
    assert redis_client.xlen(audit.STREAM) == 0  # acknowledged and deleted after the commit
    assert entry_id


def test_the_consumer_thread_records_events(make_auth):
    auth = make_auth()  # the recorder thread on, as in production
    ada = user(auth, "ada@example.com")
    deadline = time.monotonic() + 15
    while (listed := events_of(auth, ada))["total"] < 2:
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)
    assert [e["event"] for e in listed["items"]] == ["login.succeeded", "user.registered"]


def test_redis_down_breaks_no_request_and_the_line_is_still_written(make_auth, audit_lines):
    auth = make_auth(redis_url="redis://127.0.0.1:9/0", audit_recorder_enabled=True)
    ada = user(auth, "ada@example.com")
    assert auth.login("ada@example.com", password=OTHER_PASSWORD).status_code == 401
    assert [e["event"] for e in audit_lines.events()] == ["user.registered", "login.succeeded", "login.failed"]
    # Listing works; the table simply misses what Redis never carried.
    assert events_of(auth, ada) == {"items": [], "total": 0}
