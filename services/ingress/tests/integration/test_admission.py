"""Backpressure and rate limits through the ingress app, on a real Redis: the refusal, its headers, and
that nothing was queued; the fast path and the FastAPI route alike; counts shared by two app instances."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import pytest
from services.workflows.tests.factories import bearer, token_verifier

from automateos_common import catalog
from automateos_ingress.main import create_app
from automateos_ingress.settings import IngressSettings, get_settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

QUEUE = "admission-test"
QUEUE_KEY = f"rq:queue:{QUEUE}"
USER = 7


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env(redis_client, monkeypatch, tmp_path):
    kw = redis_client.connection_pool.connection_kwargs
    url = f"redis://{kw['host']}:{kw['port']}/{kw['db']}"
    values = {"REDIS_URL": url, "AUTOMATEOS_DATA_DIR": str(tmp_path), "AUTOMATEOS_QUEUE_NAME": QUEUE,
              "AUTOMATEOS_WORKFLOWS_URL": "http://127.0.0.1:9", "AUTOMATEOS_QUEUE_MAX_DEPTH": "5",
              "AUTOMATEOS_QUEUE_DEPTH_INTERVAL_MS": "20"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    with redis_client.pipeline() as pipe:
        for wf, token, options in ((1, "plain", {}), (2, "limited", {"rate_limit": "3/minute"})):
            catalog.publish(pipe, catalog.CatalogEntry(workflow_id=wf, owner_id=USER, is_active=True, version=1,
                                                      definition={}, webhook_token=token, webhook_method="POST",
                                                      webhook_options=options))
        pipe.set(catalog.READY_KEY, "1")
        pipe.execute()
    yield monkeypatch
    get_settings.cache_clear()


class Running:
    """Apps started (lifespan) with a client each; `client=` sets the caller's address."""

    def __init__(self) -> None:
        self.stack = AsyncExitStack()

    async def client(self, app, address: str = "127.0.0.1") -> httpx.AsyncClient:
        await self.stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app, client=(address, 4321))
        return await self.stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://t"))


@pytest.fixture
async def running():
    r = Running()
    async with r.stack:
        yield r


async def _until(predicate, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_full_queue_is_503_with_retry_after_until_it_drains(env, redis_client, running):
    app = create_app(IngressSettings())
    client = await running.client(app)
    app.state.token_verifier = token_verifier(get_settings())
    assert (await client.post("/hooks/plain", json={})).status_code == 202
    redis_client.rpush(QUEUE_KEY, *[f"other-{i}" for i in range(4)])  # 5 waiting: the limit
    gauge = app.state.acceptor.admission.gauge

    async def full() -> bool:
        return bool(gauge.full)

    await _until(full)
    r = await client.post("/hooks/plain", json={})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "QUEUE_FULL"
    assert int(r.headers["retry-after"]) == 15  # nothing drained yet: the fallback
    manual = await client.post("/api/v1/workflows/1/execute", json={}, headers=bearer(USER, get_settings()))
    assert manual.status_code == 503 and manual.json()["error"]["code"] == "QUEUE_FULL"
    assert "retry-after" in manual.headers
    assert redis_client.llen(QUEUE_KEY) == 5  # nothing queued by the refusals

    redis_client.lpop(QUEUE_KEY)  # 4: below the limit, not below 90 % of it (4.5): still refusing
    await asyncio.sleep(0.1)
    assert (await client.post("/hooks/plain", json={})).status_code == 503
    redis_client.lpop(QUEUE_KEY, 2)  # 2 left: accepting again

    async def accepting() -> bool:
        return not gauge.full

    await _until(accepting)
    assert (await client.post("/hooks/plain", json={})).status_code == 202
    assert redis_client.llen(QUEUE_KEY) == 3


async def test_a_workflow_limit_refuses_the_fourth_of_3_a_minute_on_both_paths_and_instances(env, redis_client,
                                                                                            running):
    fast = await running.client(create_app(IngressSettings()))
    plain = await running.client(create_app(IngressSettings(), fast_webhooks=False))  # another instance, same Redis
    statuses = [(await c.post("/hooks/limited", json={"n": i})).status_code for i, c in enumerate((fast, plain, fast))]
    assert statuses == [202, 202, 202]
    refused = [await c.post("/hooks/limited", json={}) for c in (fast, plain)]
    assert [r.status_code for r in refused] == [429, 429]
    assert refused[0].json() == refused[1].json()
    body = refused[0].json()["error"]
    assert body["code"] == "RATE_LIMITED"
    assert body["details"]["scope"] == "workflow" and body["details"]["limit"] == "3 per 1 minute"
    for r in refused:
        assert 50 <= int(r.headers["retry-after"]) <= 60  # limits read the counts the script wrote: same keys
        assert r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-remaining"] == "0"
        assert r.headers["ratelimit-policy"] == "3;w=60"
        assert r.headers["content-type"] == "application/json"
    assert redis_client.llen(QUEUE_KEY) == 3
    # Another workflow is not counted with it.
    assert (await fast.post("/hooks/plain", json={})).status_code == 202


async def test_the_address_limit_counts_each_caller_apart(env, redis_client, running):
    env.setenv("AUTOMATEOS_WEBHOOK_IP_RATE_LIMIT", "2/minute")
    get_settings.cache_clear()
    app = create_app(IngressSettings())
    one = await running.client(app, "203.0.113.1")
    two = await running.client(create_app(IngressSettings(), fast_webhooks=False), "203.0.113.2")
    assert [(await one.post("/hooks/plain")).status_code for _ in range(3)] == [202, 202, 429]
    r = await one.post("/hooks/limited")  # the address's limit, whichever workflow
    assert r.status_code == 429 and r.json()["error"]["details"]["scope"] == "address"
    assert [(await two.post("/hooks/plain")).status_code for _ in range(3)] == [202, 202, 429]
    assert redis_client.llen(QUEUE_KEY) == 4


async def test_behind_a_proxy_the_configured_header_is_the_caller(env, redis_client, running):
    env.setenv("AUTOMATEOS_WEBHOOK_IP_RATE_LIMIT", "1/minute")
    env.setenv("AUTOMATEOS_CLIENT_IP_HEADER", "X-Real-IP")
    get_settings.cache_clear()
    proxy = await running.client(create_app(IngressSettings()), "10.0.0.2")  # every request from the proxy
    assert (await proxy.post("/hooks/plain", headers={"X-Real-IP": "198.51.100.1"})).status_code == 202
    assert (await proxy.post("/hooks/plain", headers={"X-Real-IP": "198.51.100.2"})).status_code == 202
    assert (await proxy.post("/hooks/plain", headers={"X-Real-IP": "198.51.100.1"})).status_code == 429


async def test_redis_down_while_counting_is_503_not_a_webhook_let_through(env, running):
    env.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    get_settings.cache_clear()
    client = await running.client(create_app(IngressSettings()))
    r = await client.post("/hooks/limited", json={})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert r.headers["retry-after"] == "1"
