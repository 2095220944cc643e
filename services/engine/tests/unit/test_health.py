"""Health answers 503 in the error envelope when a dependency is down, with the checks named."""

from __future__ import annotations

import asyncio

import httpx
from redis import Redis

from automateos_devstack.servers import free_port
from automateos_engine.health import create_app


def get(app, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as c:
            return await c.get(path)

    return asyncio.run(call())


def test_redis_down_and_a_dead_worker_give_503_in_the_envelope():
    app = create_app(worker_status=lambda: (0, 2))
    app.state.redis = Redis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    r = get(app, "/api/v1/engine/healthz")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    body = r.json()
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["message"] == "engine cannot serve: redis, workers unavailable"
    assert body["checks"]["redis"] == "unavailable: ConnectionError"
    assert body["checks"]["workers"] == "unavailable: 0/2 alive"
    app.state.redis.close()


def test_healthy(redis_client):
    app = create_app(worker_status=lambda: (2, 2))
    app.state.redis = redis_client
    r = get(app, "/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok", "service": "engine",
                                               "checks": {"redis": "ok", "workers": "ok"}})
