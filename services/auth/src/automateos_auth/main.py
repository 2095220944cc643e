"""The auth service: `uvicorn automateos_auth.main:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI

from automateos_common.app import check_db, create_service_app
from automateos_common.auth import JWKSCache, TokenVerifier
from automateos_common.db import make_engine, migrate

from .api.routes import auth, users
from .keys import SigningKey
from .settings import AuthSettings, get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.database_url_for("auth")
        await anyio.to_thread.run_sync(migrate, url, MIGRATIONS, "alembic_version_auth")  # in a child process
        engine = make_engine(url)
        key = SigningKey.from_settings(settings)
        app.state.engine = engine
        app.state.signing_key = key
        # Auth verifies its own tokens with its own public key: no HTTP round trip to itself.
        cache = JWKSCache("unused://self", min_refresh_s=1e9, max_age_s=1e12)
        cache.load(key.jwks())
        app.state.token_verifier = TokenVerifier(cache, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        yield
        engine.dispose()

    async def health(app: FastAPI) -> dict[str, str]:
        return {"database": await check_db(app)}

    app = create_service_app(
        "auth", title="AutomateOS auth", lifespan=lifespan, health=health, settings=settings, no_store=True,
        description="Register, log in, RS256 access tokens and the JWKS every other service verifies them with.",
    )
    app.include_router(auth.router)
    app.include_router(users.router)
    return app
