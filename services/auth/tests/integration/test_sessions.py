"""Sessions: login gives an access token and a refresh token; refresh rotates them; a spent refresh
token presented again revokes its whole family; logout revokes the family. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import jwt
import pytest
from services.auth.tests.factories import AuthClient
from sqlalchemy import text
from sqlmodel import Session, col, select

from automateos_auth.models import RefreshToken
from automateos_common.jsonutil import utcnow

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"


def session_of(auth: AuthClient, email: str = EMAIL) -> dict:
    assert auth.register(email).status_code == 201
    r = auth.login(email)
    assert r.status_code == 200, r.text
    return r.json()


def rows(auth: AuthClient) -> list[dict]:
    with Session(auth.app.state.engine) as session:
        return [r.model_dump() for r in session.exec(select(RefreshToken).order_by(col(RefreshToken.id)))]


def unauthorized(r, message: str) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == {"error": {"code": "UNAUTHORIZED", "message": message}}
    assert r.headers["www-authenticate"] == "Bearer"


def test_login_keeps_the_contract_and_adds_a_refresh_token(make_auth):
    auth = make_auth(access_token_ttl_s=120, refresh_token_ttl_s=600)
    body = session_of(auth)
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}
    assert (body["token_type"], body["expires_in"], body["refresh_expires_in"]) == ("bearer", 120, 600)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120
    token = body["refresh_token"]
    assert token.startswith("aosr_") and len(token) == 48
    [row] = rows(auth)
    # Only the hash is stored: no column holds the token itself.
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in row.values()}
    assert (row["spent_at"], row["revoked_at"]) == (None, None)
    expires = row["expires_at"].replace(tzinfo=None)
    created = row["created_at"].replace(tzinfo=None)
    assert expires - created == timedelta(seconds=600)


def test_refresh_rotates_and_reuse_revokes_the_whole_family(auth, caplog):
    caplog.set_level(logging.DEBUG)
    first = session_of(auth)
    r = auth.refresh(first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert auth.me(second["access_token"]).json()["email"] == EMAIL
    third = auth.refresh(second["refresh_token"]).json()

    # The first token was spent: presenting it again is a theft signal.
    unauthorized(auth.refresh(first["refresh_token"]), "Refresh token already used; the session is revoked")
    # ... which revokes every token of the family, the newest included.
    unauthorized(auth.refresh(third["refresh_token"]), "Invalid refresh token")
    family = rows(auth)
    assert len(family) == 3 and len({r["family_id"] for r in family}) == 1
    assert all(r["revoked_at"] is not None for r in family)
    assert [r["spent_at"] is not None for r in family] == [True, True, False]
    for t in (first, second, third):  # never in a log line
        assert t["refresh_token"] not in caplog.text


def test_reuse_in_one_session_leaves_the_others_alone(auth):
    a = session_of(auth)
    b = auth.login(EMAIL).json()  # a second device
    auth.refresh(a["refresh_token"])
    unauthorized(auth.refresh(a["refresh_token"]), "Refresh token already used; the session is revoked")
    assert auth.refresh(b["refresh_token"]).status_code == 200


def test_logout_revokes_the_family(auth):
    first = session_of(auth)
    second = auth.refresh(first["refresh_token"]).json()
    other = auth.login(EMAIL).json()
    r = auth.post("/api/v1/auth/logout", json={"refresh_token": first["refresh_token"]})  # a spent one works too
    assert (r.status_code, r.content) == (204, b"")
    unauthorized(auth.refresh(second["refresh_token"]), "Invalid refresh token")
    assert auth.refresh(other["refresh_token"]).status_code == 200
    # Idempotent, and no oracle for unknown tokens.
    assert auth.post("/api/v1/auth/logout", json={"refresh_token": first["refresh_token"]}).status_code == 204
    assert auth.post("/api/v1/auth/logout", json={"refresh_token": "aosr_unknown"}).status_code == 204
    assert r.headers["cache-control"] == "no-store"


def test_an_expired_or_unknown_refresh_token_is_401(auth):
    body = session_of(auth)
    unauthorized(auth.refresh("aosr_" + "x" * 43), "Invalid refresh token")
    with auth.app.state.engine.begin() as conn:
        conn.execute(text("UPDATE refresh_tokens SET expires_at = :t"), {"t": utcnow() - timedelta(seconds=1)})
    unauthorized(auth.refresh(body["refresh_token"]), "Refresh token expired")
    assert rows(auth)[0]["revoked_at"] is None  # expiry is not reuse


def test_a_deleted_user_cannot_refresh(auth):
    body = session_of(auth)
    with auth.app.state.engine.begin() as conn:
        conn.execute(text("DELETE FROM refresh_tokens"))
        conn.execute(text("DELETE FROM users"))
    unauthorized(auth.refresh(body["refresh_token"]), "Invalid refresh token")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({}, "body"),
    ({"json": {}}, "refresh_token"),
    ({"json": {"refresh_token": ""}}, "refresh_token"),
    ({"json": {"refresh_token": "x" * 513}}, "refresh_token"),
    ({"json": {"refresh_token": 5}}, "refresh_token"),
    ({"json": ["aosr_x"]}, "body"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
])
@pytest.mark.parametrize("path", ["/api/v1/auth/refresh", "/api/v1/auth/logout"])
def test_bad_refresh_bodies_are_422_in_the_envelope(auth, path, kwargs, field):
    r = auth.post(path, **kwargs)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["code"], err["details"]["field"]) == ("VALIDATION_ERROR", field)
    assert "x" * 100 not in r.text  # the rejected value is not echoed back


def test_a_key_rotation_keeps_old_tokens_valid_and_refresh_signs_with_the_new_key(auth, monkeypatch):
    from automateos_auth import keys as keys_module
    from automateos_auth.keys import rotate_key

    monkeypatch.setattr(keys_module, "RELOAD_CHECK_S", 0.0)
    body = session_of(auth)
    old_kid = jwt.get_unverified_header(body["access_token"])["kid"]
    rotate_key(auth.settings)
    kids = [k["kid"] for k in auth.get("/api/v1/auth/jwks.json").json()["keys"]]
    assert len(kids) == 2 and kids[1] == old_kid
    assert auth.me(body["access_token"]).status_code == 200  # signed by the retired key
    fresh = auth.refresh(body["refresh_token"]).json()  # refresh tokens are not tied to a key
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == kids[0]
    assert auth.me(fresh["access_token"]).status_code == 200
    # The grace ends: the retired key is no longer published, and its tokens no longer verify.
    monkeypatch.setattr(keys_module, "utcnow", lambda: utcnow() + timedelta(days=1))
    assert [k["kid"] for k in auth.get("/api/v1/auth/jwks.json").json()["keys"]] == [kids[0]]
    unauthorized(auth.me(body["access_token"]), "Invalid token")


def test_two_refreshes_racing_with_one_token_one_wins_and_the_session_is_revoked(auth):
    import anyio
    import httpx

    body = session_of(auth)

    async def race() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=auth.app, client=("203.0.113.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            answers: list[httpx.Response] = []

            async def one() -> None:
                answers.append(await client.post("/api/v1/auth/refresh",
                                                 json={"refresh_token": body["refresh_token"]}))

            async with anyio.create_task_group() as tg:
                for _ in range(2):
                    tg.start_soon(one)
            return answers

    answers = auth.portal.call(race)
    assert sorted(r.status_code for r in answers) == [200, 401]
    winner = next(r for r in answers if r.status_code == 200).json()
    loser = next(r for r in answers if r.status_code == 401).json()
    assert loser["error"]["message"] == "Refresh token already used; the session is revoked"
    unauthorized(auth.refresh(winner["refresh_token"]), "Invalid refresh token")
