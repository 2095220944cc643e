"""The engine's HTTP face: health only (the work happens in RQ worker processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis import Redis

from automateos_common.app import check_redis, create_service_app

from .settings import get_settings


def create_app(worker_status: Any = None) -> FastAPI:
    """`worker_status`: a callable returning (alive, expected) for the workers this process supervises."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        yield
        app.state.redis.close()

    async def health(app: FastAPI) -> dict[str, str]:
        checks = {"redis": await check_redis(app)}
        if worker_status is not None:
            alive, expected = worker_status()
            checks["workers"] = "ok" if alive == expected else f"unavailable: {alive}/{expected} alive"
        return checks

    return create_service_app(
        "engine", title="AutomateOS engine", lifespan=lifespan, health=health, settings=settings,
        description="RQ workers that run workflows. This app only reports health.",
    )
