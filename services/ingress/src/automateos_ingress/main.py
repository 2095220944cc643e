"""The ingress service: `uvicorn automateos_ingress.main:create_app --factory`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis import BlockingConnectionPool, Redis

from automateos_common.app import check_redis, create_service_app
from automateos_common.auth import JWKS_PATH, JWKSCache, TokenVerifier
from automateos_common.fastredis import PipelinedRedis
from automateos_common.queue import make_queue

from .accept import Acceptor
from .admission import Admission, QueueGauge, RateLimits
from .api.routes import hooks
from .fastpath import IngressApp, WebhookFastPath
from .hookcache import HookCache
from .respond import RunWaiter
from .settings import IngressSettings, get_settings


def create_app(settings: IngressSettings | None = None, *, fast_webhooks: bool = True) -> FastAPI:
    """`fast_webhooks=False` leaves webhooks to the FastAPI route alone (tests compare the two)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking pool: a burst waits briefly for a connection instead of opening hundreds.
        pool = BlockingConnectionPool.from_url(settings.redis_url, max_connections=64, timeout=5,
                                               socket_timeout=5, socket_connect_timeout=2)
        redis = Redis(connection_pool=pool)
        # The webhook hot path's client: asyncio, so waiting on Redis takes no thread, and pipelining.
        aredis = PipelinedRedis.from_url(settings.redis_url, timeout=5, connect_timeout=2)
        http = httpx.Client(timeout=5.0, trust_env=False)
        hooks = HookCache(settings.redis_url)
        hooks_task = asyncio.create_task(hooks.run(), name="hook-cache")
        queue = make_queue(redis, settings.queue_name)
        gauge = None
        if settings.queue_max_depth > 0:
            gauge = QueueGauge(aredis, queue.key, max_depth=settings.queue_max_depth,
                               interval_s=settings.queue_depth_interval_ms / 1000)
        gauge_task = asyncio.create_task(gauge.run(), name="queue-gauge") if gauge is not None else None
        limits = RateLimits(settings.redis_url, ip_limit=settings.webhook_ip_rate_limit, aredis=aredis)
        waiter = RunWaiter(settings.redis_url, aredis, output_limit=settings.step_output_max_bytes)
        waiter_task = asyncio.create_task(waiter.run(), name="run-waiter")
        app.state.redis = redis
        app.state.acceptor = Acceptor(redis=redis, queue=queue, workflows_url=settings.workflows_url.rstrip("/"),
                                      internal_secret=settings.internal_secret(), http=http, aredis=aredis,
                                      hooks=hooks, admission=Admission(gauge, limits), waiter=waiter)
        app.state.token_verifier = TokenVerifier(
            JWKSCache(settings.auth_url.rstrip("/") + JWKS_PATH),
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )
        yield
        waiter.close()  # sync webhooks still waiting are answered (202) before the clients go
        hooks.close()
        tasks = [hooks_task, waiter_task] if gauge_task is None else [hooks_task, waiter_task, gauge_task]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=2)  # never held up by a connection that will not close
        await limits.aclose()
        http.close()
        await aredis.aclose()
        redis.close()

    async def health(app: FastAPI) -> dict[str, str]:
        return {"redis": await check_redis(app)}

    app = create_service_app(
        "ingress", title="AutomateOS ingress", lifespan=lifespan, health=health, settings=settings,
        description="Accepts webhooks and manual runs: the job is in Redis before the 202 is sent.",
        app_class=IngressApp,
    )
    app.include_router(hooks.router)
    # /hooks/{token} without FastAPI's per-request machinery (the route above stays for OpenAPI and the rest).
    if fast_webhooks:
        assert isinstance(app, IngressApp)
        app.fast_webhooks = WebhookFastPath(max_body=settings.max_body_bytes, hsts_max_age_s=settings.hsts_max_age_s,
                                            client_ip_header=settings.client_ip_header)
    return app
