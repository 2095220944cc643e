"""The auth service: `uvicorn automateos_auth.main:create_app --factory`."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from redis import Redis

from automateos_common.app import check_db, create_service_app
from automateos_common.auth import TokenVerifier
from automateos_common.db import make_engine, migrate

from .api.routes import auth, users
from .events import EventRecorder
from .keys import KeyRing
from .ratelimit import Limiter
from .settings import AuthSettings, get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url_for("auth")
        await anyio.to_thread.run_sync(migrate, url, MIGRATIONS, "alembic_version_auth")  # in a child process
        engine = make_engine(url)
        keys = KeyRing(settings)
        app.state.engine = engine
        app.state.key_ring = keys
        app.state.limiter = Limiter(settings)
        # Keys the hash of unknown login names in security events (routes/auth.py: account_ref).
        secret = settings.internal_secret().encode()
        app.state.audit_key = hashlib.sha256(b"automateos-audit-account\0" + secret).digest()
        # Auth verifies its own tokens with its own keys (current and retired): no HTTP round trip to itself.
        app.state.token_verifier = TokenVerifier(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        # Security events from every service (the stream aos:audit) into security_events. It blocks on
        # XREADGROUP: its own connection, without a read timeout. Redis away only delays the table.
        stop = threading.Event()
        threads = []
        if settings.audit_recorder_enabled:
            rec_redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
            app.state.event_recorder = EventRecorder(engine, rec_redis)
            threads.append(threading.Thread(target=app.state.event_recorder.run_forever, args=(stop,),
                                            name="security-events", daemon=True))
        for t in threads:
            t.start()
        yield
        stop.set()
        for t in threads:
            t.join(timeout=5)
        engine.dispose()

    async def health(app: FastAPI) -> dict[str, str]:
        return {"database": await check_db(app)}

    app = create_service_app(
        "auth", title="AutomateOS auth", lifespan=lifespan, health=health, settings=settings, no_store=True,
        database=True,
        description="Register, log in, sessions (RS256 access tokens, rotating refresh tokens) and the JWKS every "
                    "other service verifies access tokens with.",
    )
    app.include_router(auth.router)
    app.include_router(users.router)
    return app
