"""What every service's `create_app()` shares: docs paths, error handlers, health routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from . import audit
from .cors import EnvelopeCORSMiddleware
from .errors import error_body, install_exception_handlers
from .headers import SecurityHeadersMiddleware
from .logs import setup_logging
from .openapi import install_error_docs
from .requestctx import RequestContextMiddleware
from .settings import CommonSettings

CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]

# name -> "ok" | error text. 503 when any check fails.
HealthCheck = Callable[[FastAPI], Awaitable[dict[str, str]]]


def create_service_app(
    name: str, *, title: str, description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    health: HealthCheck, settings: CommonSettings, app_class: type[FastAPI] = FastAPI, no_store: bool = False,
    database: bool = False,
) -> FastAPI:
    """`no_store`: `Cache-Control: no-store` on every response (auth: tokens must not be cached).
    `database`: the service uses SQLAlchemy (its outages answer 503, see `install_exception_handlers`)."""
    setup_logging(settings.log_level)
    audit.configure(service=name, redis_url=settings.redis_url, stream_maxlen=settings.audit_stream_maxlen)

    @asynccontextmanager
    async def frozen_after_start(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            # What start-up built (modules, app, pools) lives as long as the process: moved out of the
            # collector's reach, so a full collection no longer walks it (shorter pauses: tail latency).
            gc.freeze()
            yield

    # Docs live under the service's own prefix so they work the same directly and through the gateway.
    app = app_class(
        title=title, description=description, version="0.1.0", lifespan=frozen_after_start,
        docs_url=f"/api/v1/{name}/docs", openapi_url=f"/api/v1/{name}/openapi.json", redoc_url=None,
    )
    install_exception_handlers(app, database=database)
    install_error_docs(app)
    origins = settings.cors_allowed_origins()
    if origins:
        # No credentials (cookies): the API takes Bearer tokens, which a page sends explicitly.
        app.add_middleware(EnvelopeCORSMiddleware, allow_origins=origins, allow_methods=CORS_METHODS,
                           allow_headers=CORS_HEADERS, expose_headers=["Location", "Retry-After"], max_age=600)
    # Outside Starlette's own stack, so that its 500s (ServerErrorMiddleware) carry the headers and the
    # request id too (and its error handlers can log the id).
    build_stack = app.build_middleware_stack
    docs_paths = (f"/api/v1/{name}/docs",)

    def build_middleware_stack() -> Any:
        return RequestContextMiddleware(
            SecurityHeadersMiddleware(build_stack(), hsts_max_age_s=settings.hsts_max_age_s, no_store=no_store,
                                      docs_paths=docs_paths),
            client_ip_header=settings.client_ip_header)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    async def healthz() -> JSONResponse:
        checks = await health(app)
        return health_response(name, checks)

    for path in ("/healthz", f"/api/v1/{name}/healthz"):
        app.add_api_route(path, healthz, methods=["GET"], tags=["health"], summary=f"{name} health",
                          include_in_schema=path == "/healthz")
    return app


def health_response(name: str, checks: dict[str, str]) -> JSONResponse:
    """200 with the checks; 503 in the error envelope (API.md: every 4xx/5xx has it), checks included."""
    body: dict[str, Any] = {"status": "ok", "service": name, "checks": checks}
    if all(v == "ok" for v in checks.values()):
        return JSONResponse(body, status_code=200)
    down = ", ".join(k for k, v in checks.items() if v != "ok")
    body["status"] = "unavailable"
    body.update(error_body("SERVICE_UNAVAILABLE", f"{name} cannot serve: {down} unavailable", {"checks": checks}))
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


async def check_redis(app: FastAPI) -> str:
    import anyio

    try:
        await anyio.to_thread.run_sync(app.state.redis.ping)
        return "ok"
    except Exception as exc:  # any failure means "cannot serve"
        return f"unavailable: {type(exc).__name__}"


async def check_db(app: FastAPI) -> str:
    import anyio
    from sqlalchemy import text

    def ping() -> Any:
        with app.state.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar()

    try:
        await anyio.to_thread.run_sync(ping)
        return "ok"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
