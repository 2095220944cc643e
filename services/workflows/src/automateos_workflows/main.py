"""The workflows service: `uvicorn automateos_workflows.main:create_app --factory`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from redis import Redis

from automateos_common.app import check_db, check_redis, create_service_app
from automateos_common.auth import JWKS_PATH, JWKSCache, TokenVerifier
from automateos_common.db import make_engine, migrate
from automateos_common.nodes.registry import default_registry
from automateos_common.queue import make_queue

from .api.routes import credentials, internal, logs, node_types, workflows
from .publisher import Publisher
from .recorder import Recorder
from .settings import WorkflowsSettings, get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: WorkflowsSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url_for("workflows")
        await anyio.to_thread.run_sync(migrate, url, MIGRATIONS, "alembic_version_workflows")  # in a child process
        engine = make_engine(url)
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                               health_check_interval=30)
        app.state.engine = engine
        app.state.redis = redis
        app.state.queue = make_queue(redis, settings.queue_name)  # replays and resumes put jobs here
        app.state.registry = default_registry()
        app.state.internal_secret = settings.internal_secret()
        app.state.secret_store = settings.make_secret_store(settings.data_dir)  # seals values; never opens them
        app.state.token_verifier = TokenVerifier(
            JWKSCache(settings.auth_url.rstrip("/") + JWKS_PATH),
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )
        publisher = Publisher(engine, redis)
        app.state.publisher = publisher
        stop = threading.Event()
        threads = [threading.Thread(target=publisher.sync_loop, args=(stop, settings.catalog_resync_s),
                                    name="catalog-sync", daemon=True)]
        if settings.recorder_enabled:
            # The recorder blocks on XREADGROUP; give it its own connection without a read timeout.
            rec_redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
            recorder = Recorder(engine, rec_redis, batch=settings.recorder_batch,
                                finished_ttl_s=settings.finished_run_ttl_s, linger_ms=settings.recorder_linger_ms,
                                nice=settings.recorder_nice,
                                value_limit=settings.step_output_max_bytes)
            threads.append(threading.Thread(target=recorder.run_forever, args=(stop,), name="recorder", daemon=True))
        for t in threads:
            t.start()
        yield
        stop.set()
        for t in threads:
            t.join(timeout=5)
        redis.close()
        engine.dispose()

    async def health(app: FastAPI) -> dict[str, str]:
        return {"database": await check_db(app), "redis": await check_redis(app)}

    app = create_service_app(
        "workflows", title="AutomateOS workflows", lifespan=lifespan, health=health, settings=settings, database=True,
        description="Workflow CRUD, definition validation, run history and credentials.",
    )
    app.include_router(workflows.router)
    app.include_router(credentials.router)
    app.include_router(logs.router)
    app.include_router(node_types.router)
    app.include_router(internal.router)
    return app
