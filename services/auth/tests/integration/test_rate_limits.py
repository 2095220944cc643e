"""Rate limits on register, token and refresh (per client address and per account), counted in the
test's real Redis; the lockout-free slowdown of repeated failed logins. Limits are set low per test."""

from __future__ import annotations

import logging
import time

import anyio
import pytest
from sqlmodel import Session, select

from automateos_auth.api.routes import auth as routes_auth
from automateos_auth.models import RefreshToken
from automateos_auth.ratelimit import KEY_PREFIX

pytestmark = pytest.mark.integration

IP_A, IP_B = "198.51.100.1", "198.51.100.2"


def limited(r, limit: str) -> int:
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert r.json() == {"error": {"code": "RATE_LIMITED", "message": f"Too many requests; retry in {retry_after} s",
                                  "details": {"retry_after_s": retry_after, "limit": limit}}}
    return retry_after


def test_register_is_limited_per_address_and_per_email(make_auth, redis_client):
    auth = make_auth(rate_limit_register_ip="2/minute", rate_limit_register_email="2/hour")
    assert auth.register("a@example.com", ip=IP_A).status_code == 201
    assert auth.register("b@example.com", ip=IP_A).status_code == 201
    retry = limited(auth.register("c@example.com", ip=IP_A), "2 per 1 minute")
    assert retry <= 60
    assert auth.register("c@example.com", ip=IP_B).status_code == 201  # another address
    # Per email (whatever the address, in any case): the second attempt is a 409, the third a 429.
    assert auth.register("D@example.com", ip=IP_B).status_code == 201
    assert auth.register("d@example.com", ip="198.51.100.3").status_code == 409
    limited(auth.register(" d@EXAMPLE.com", ip="198.51.100.4"), "2 per 1 hour")
    # Counted in Redis under hashed names: no address of a user in the key names.
    keys = [k.decode() for k in redis_client.keys("*") if k != b"aos:audit"]  # the security events' stream
    assert keys and all(k.startswith(KEY_PREFIX) for k in keys)
    assert not any("example.com" in k for k in keys)


def test_login_is_limited_per_address_and_per_account(make_auth):
    auth = make_auth(rate_limit_token_ip="3/minute", rate_limit_token_account="2/minute;100/hour")
    auth.register("ada@example.com", ip=IP_A)
    assert auth.login("ada@example.com", ip=IP_A).status_code == 200
    assert auth.login("ada@example.com", password="wrong password", ip=IP_B).status_code == 401
    # The account has had its 2 attempts this minute: even the right password waits (429, not 401/200).
    limited(auth.login("ada@example.com", ip=IP_A), "2 per 1 minute")
    # IP_A made 2 attempts; a third for another account is allowed, a fourth is over its 3/minute.
    assert auth.login("nobody@example.com", ip=IP_A).status_code == 401
    limited(auth.login("other@example.com", ip=IP_A), "3 per 1 minute")


def test_refresh_is_limited_per_address_and_per_user_without_spending_the_token(make_auth):
    auth = make_auth(rate_limit_refresh_ip="100/minute", rate_limit_refresh_account="2/minute")
    auth.register("ada@example.com")
    token = auth.login("ada@example.com").json()["refresh_token"]
    for _ in range(2):
        token = auth.refresh(token, ip=IP_A).json()["refresh_token"]
    limited(auth.refresh(token, ip=IP_B), "2 per 1 minute")
    with Session(auth.app.state.engine) as session:
        newest = session.exec(select(RefreshToken).order_by(RefreshToken.id.desc())).first()  # type: ignore[union-attr]
        assert newest is not None and newest.spent_at is None and newest.revoked_at is None

    per_ip = make_auth(rate_limit_refresh_ip="1/minute")
    assert per_ip.refresh("aosr_unknown", ip="198.51.100.9").status_code == 401
    limited(per_ip.refresh("aosr_unknown", ip="198.51.100.9"), "1 per 1 minute")


def test_replicas_share_the_counts_in_redis(make_auth):
    one = make_auth(rate_limit_register_ip="2/minute")
    two = make_auth(rate_limit_register_ip="2/minute")
    assert one.register("a@example.com", ip=IP_A).status_code == 201
    assert two.register("b@example.com", ip=IP_A).status_code == 201
    limited(one.register("c@example.com", ip=IP_A), "2 per 1 minute")


def test_memory_storage_counts_in_the_process_only(make_auth, redis_client):
    auth = make_auth(rate_limit_storage="memory", rate_limit_register_ip="1/minute")
    assert auth.register("a@example.com", ip=IP_A).status_code == 201
    limited(auth.register("b@example.com", ip=IP_A), "1 per 1 minute")
    assert redis_client.keys("aos:auth:*") == []  # (security events still go to aos:audit)


def test_redis_down_falls_back_to_memory_and_never_500s(make_auth, caplog):
    caplog.set_level(logging.WARNING)
    auth = make_auth(redis_url="redis://127.0.0.1:9/0", rate_limit_register_ip="1/minute")
    assert auth.register("a@example.com", ip=IP_A).status_code == 201
    limited(auth.register("b@example.com", ip=IP_A), "1 per 1 minute")
    assert auth.login("a@example.com", ip=IP_A).status_code == 200
    assert "counting in this process's memory" in caplog.text


def test_the_client_address_header_when_configured(make_auth):
    auth = make_auth(rate_limit_register_ip="1/minute", client_ip_header="X-Real-IP")
    assert auth.register("a@example.com", headers={"X-Real-IP": "192.0.2.10"}).status_code == 201
    # Same peer, another client behind the proxy: counted apart.
    assert auth.register("b@example.com", headers={"X-Real-IP": "192.0.2.11"}).status_code == 201
    limited(auth.register("c@example.com", headers={"X-Real-IP": "192.0.2.11"}), "1 per 1 minute")


def test_failed_logins_slow_down_the_account_but_never_lock_it_out(make_auth, monkeypatch):
    auth = make_auth(login_slowdown_after=2, login_slowdown_base_s=0.5, login_slowdown_max_s=1.0)
    auth.register("ada@example.com")
    limiter = auth.app.state.limiter
    waits: list[float] = []  # what each login waited before it was answered (none: not slowed)
    real_sleep = routes_auth.anyio.sleep

    async def recorded_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(routes_auth.anyio, "sleep", recorded_sleep)

    def login(email: str, password: str) -> int:
        return auth.login(email, password=password).status_code

    assert [login("ada@example.com", "wrong password") for _ in range(2)] == [401, 401]
    assert waits == []  # the first failures are answered at once
    # 2 failures so far: 0.5 s; 3: 1.0 s; 4: 1.0 s (the bound).
    assert limiter.login_delay("ada@example.com") == 0.5
    t0 = time.perf_counter()
    assert [login("ada@example.com", "wrong password") for _ in range(3)] == [401, 401, 401]
    assert waits == [0.5, 1.0, 1.0] and time.perf_counter() - t0 >= 2.5  # really waited (a lower bound only)
    assert limiter.login_delay("ADA@example.com ") == 1.0  # one account, however it is typed
    # The right password still gets in (after the wait), and clears the count.
    assert login("ada@example.com", "correct horse battery") == 200 and waits[-1] == 1.0
    assert limiter.login_delay("ada@example.com") == 0.0
    waits.clear()
    assert login("ada@example.com", "wrong password") == 401 and waits == []
    # An unknown account is slowed the same way (no enumeration by timing).
    for _ in range(2):
        login("ghost@example.com", "x" * 8)
    assert login("ghost@example.com", "x" * 8) == 401 and waits == [0.5]


def test_the_slowdown_does_not_block_the_event_loop(make_auth):
    auth = make_auth(login_slowdown_after=1, login_slowdown_base_s=1.5, login_slowdown_max_s=1.5)
    auth.register("ada@example.com")
    auth.login("ada@example.com", password="wrong password")

    async def both() -> tuple[float, float]:
        import httpx

        transport = httpx.ASGITransport(app=auth.app, client=(IP_A, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            t0 = time.perf_counter()
            times: dict[str, float] = {}

            async def login() -> None:
                await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": "nope1234"})
                times["login"] = time.perf_counter() - t0

            async def health() -> None:
                await anyio.sleep(0.1)  # the login is waiting by now
                await client.get("/healthz")
                times["health"] = time.perf_counter() - t0

            async with anyio.create_task_group() as tg:
                tg.start_soon(login)
                tg.start_soon(health)
            return times["login"], times["health"]

    login_s, health_s = auth.portal.call(both)
    assert login_s >= 1.5
    # Answered while the login waited: a blocked loop would answer it only after the login's 1.5 s.
    assert health_s < login_s


def test_bad_limit_settings_stop_the_start(tmp_path):
    from automateos_auth.settings import AuthSettings

    with pytest.raises(ValueError, match="is not a rate limit"):
        AuthSettings(rate_limit_token_ip="lots")
