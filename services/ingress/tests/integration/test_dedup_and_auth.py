"""Deduplication and authentication through the ingress app on a real Redis: a repeated delivery key
starts one run (also when the deliveries arrive at once), and a trigger's opened credential is fetched
once per hook entry and again as soon as the entry changes (a rotated secret applies at once)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import httpx
import pytest

from automateos_common import catalog
from automateos_ingress.accept import Acceptor
from automateos_ingress.main import create_app
from automateos_ingress.settings import IngressSettings, get_settings

from .test_fastpath import AUTH, GITHUB_SIG
from .test_fastpath import apps as apps  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
QUEUE = "rq:queue:fastpath-test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def publish(redis_client, workflow_id: int, token: str, options: dict) -> None:
    with redis_client.pipeline() as pipe:
        catalog.publish(pipe, catalog.CatalogEntry(workflow_id=workflow_id, owner_id=7, is_active=True, version=1,
                                                  definition={}, webhook_token=token, webhook_method="POST",
                                                  webhook_options=options))
        pipe.execute()


async def session(app):
    """A client on `app` with its lifespan running, once its hook cache hears announcements."""
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://ingress.test")
    deadline = time.monotonic() + 5
    while not app.state.acceptor.hooks.live:
        assert time.monotonic() < deadline, "the hook cache never subscribed"
        await asyncio.sleep(0.01)
    return client


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "FastAPI route"])
async def test_the_same_key_twice_starts_one_run(apps, redis_client, fast):
    app = apps[0] if fast else apps[1]
    async with app.router.lifespan_context(app):
        client = await session(app)
        first = await client.post("/hooks/post-token", json={"n": 1}, headers={"Idempotency-Key": "delivery-1"})
        again = await client.post("/hooks/post-token", json={"n": 2}, headers={"Idempotency-Key": "delivery-1"})
        other = await client.post("/hooks/post-token", json={"n": 3}, headers={"Idempotency-Key": "delivery-2"})
    assert first.status_code == 202 and other.status_code == 202
    run_id = first.json()["execution_id"]
    assert again.status_code == 200
    assert again.json() == {"execution_id": run_id, "status": "queued", "duplicate": True}
    assert again.headers["location"] == f"/api/v1/logs/{run_id}"
    assert redis_client.llen(QUEUE) == 2
    key = f"aos:dedup:1:{hashlib.sha256(b'delivery-1').hexdigest()}"
    assert redis_client.get(key) == run_id.encode() and 86_390 < redis_client.ttl(key) <= 86_400


async def test_concurrent_deliveries_of_one_key_start_exactly_one_run(apps, redis_client):
    fast, _ = apps
    async with fast.router.lifespan_context(fast):
        client = await session(fast)
        answers = await asyncio.gather(*(client.post("/hooks/post-token", json={"i": i},
                                                     headers={"Idempotency-Key": "same"}) for i in range(20)))
    assert sorted(r.status_code for r in answers) == [200] * 19 + [202]
    assert len({r.json()["execution_id"] for r in answers}) == 1
    assert redis_client.llen(QUEUE) == 1 and len(redis_client.keys("aos:run:*")) == 1


async def test_after_the_window_and_with_dedup_off_a_key_starts_a_new_run(apps, redis_client):
    fast, _ = apps
    publish(redis_client, 20, "short-token", {"dedup": {"enabled": True, "header": "X-GitHub-Delivery",
                                                        "window_s": 1}})
    publish(redis_client, 21, "off-token", {"dedup": {"enabled": False, "header": "Idempotency-Key",
                                                      "window_s": 60}})
    async with fast.router.lifespan_context(fast):
        client = await session(fast)
        gh = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
        a = await client.post("/hooks/short-token", json={}, headers=gh)
        b = await client.post("/hooks/short-token", json={}, headers=gh)
        await asyncio.sleep(1.1)
        c = await client.post("/hooks/short-token", json={}, headers=gh)
        off = [await client.post("/hooks/off-token", json={}, headers={"Idempotency-Key": "k"}) for _ in range(2)]
    assert [a.status_code, b.status_code, c.status_code] == [202, 200, 202]
    assert b.json()["execution_id"] == a.json()["execution_id"] != c.json()["execution_id"]
    assert [r.status_code for r in off] == [202, 202]
    assert redis_client.llen(QUEUE) == 4


async def test_an_unauthenticated_delivery_does_not_burn_its_key(apps, redis_client):
    fast, _ = apps
    async with fast.router.lifespan_context(fast):
        client = await session(fast)
        forged = await client.post("/hooks/hmac-token", content=b"Hello, World!",
                                   headers={"Idempotency-Key": "k1", "X-Hub-Signature-256": "sha256=" + "0" * 64})
        real = await client.post("/hooks/hmac-token", content=b"Hello, World!",
                                 headers={"Idempotency-Key": "k1", "X-Hub-Signature-256": GITHUB_SIG})
    assert (forged.status_code, real.status_code) == (401, 202)
    assert redis_client.llen(QUEUE) == 1


async def test_the_credential_is_fetched_once_per_hook_entry_and_a_rotation_applies_at_once(
        redis_client, monkeypatch, tmp_path):
    kw = redis_client.connection_pool.connection_kwargs
    for k, v in {"REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}", "AUTOMATEOS_DATA_DIR": str(tmp_path),
                 "AUTOMATEOS_QUEUE_NAME": "fastpath-test", "AUTOMATEOS_WORKFLOWS_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    secret = {"value": "old secret value"}
    fetched: list[str] = []

    async def credential(_self, token: str):  # the workflows service's answer (a process boundary)
        fetched.append(token)
        return {"id": 4, "type": "webhook_secret", "version": len(fetched), "fields": {"secret": secret["value"]}}

    monkeypatch.setattr(Acceptor, "_hook_auth_record", credential)
    redis_client.set(catalog.READY_KEY, "1")
    publish(redis_client, 30, "rot-token", {"auth": AUTH["hmac"]})

    def signed(value: str, body: bytes) -> dict[str, str]:
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(value.encode(), body, hashlib.sha256).hexdigest()}

    app = create_app(IngressSettings())
    try:
        async with app.router.lifespan_context(app):
            client = await session(app)
            ok = await asyncio.gather(*(client.post("/hooks/rot-token", content=b"a",
                                                    headers=signed("old secret value", b"a")) for _ in range(10)))
            assert [r.status_code for r in ok] == [202] * 10
            assert fetched == ["rot-token"]  # one fetch for ten requests at once
            secret["value"] = "new secret value"
            publish(redis_client, 30, "rot-token", {"auth": AUTH["hmac"]})  # what a credential update does
            deadline = time.monotonic() + 5
            while app.state.acceptor.hooks.get("rot-token") is not None:  # the announcement's arrival
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            old = await client.post("/hooks/rot-token", content=b"b", headers=signed("old secret value", b"b"))
            new = await client.post("/hooks/rot-token", content=b"c", headers=signed("new secret value", b"c"))
            assert (old.status_code, new.status_code) == (401, 202)
            assert fetched == ["rot-token", "rot-token"]
    finally:
        get_settings.cache_clear()
    assert redis_client.llen(QUEUE) == 11
