"""Request ids and the client address: one rule for every service (automateos_common.requestctx)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from automateos_common.audit import clean_request_id
from automateos_common.requestctx import RequestContextMiddleware, client_ip


def app_with(header: str | None) -> FastAPI:
    app = FastAPI()

    @app.get("/seen")
    def seen(request: Request) -> dict[str, Any]:
        return {"request_id": request.state.request_id, "client_ip": request.state.client_ip}

    app.add_middleware(RequestContextMiddleware, client_ip_header=header)
    return app


def get(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/seen", headers=headers)

    return asyncio.run(go())


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123_x.y", True), ("A" * 128, True), ("A" * 129, False), ("", False), ("has space", False),
    ("semi;colon", False), ("ünï", False), ("new\nline", False),
])
def test_a_request_id_is_kept_only_when_sane(given: str, kept: bool) -> None:
    assert (clean_request_id(given) == given) is kept


def test_the_middleware_hands_the_id_to_handlers_and_returns_it() -> None:
    r = get(app_with(None), {"X-Request-ID": "req-1"})
    assert r.json() == {"request_id": "req-1", "client_ip": "198.51.100.9"}
    assert r.headers["x-request-id"] == "req-1"
    made = get(app_with(None), {"X-Request-ID": "bad id"})
    rid = made.json()["request_id"]
    assert made.headers["x-request-id"] == rid and len(rid) == 32 and rid != get(app_with(None)).json()["request_id"]


def test_the_client_address_comes_from_the_configured_header_only() -> None:
    headers = {"X-Real-IP": "192.0.2.10, 10.0.0.1", "X-Forwarded-For": "192.0.2.99"}
    assert get(app_with("X-Real-IP"), headers).json()["client_ip"] == "192.0.2.10"
    assert get(app_with(None), headers).json()["client_ip"] == "198.51.100.9"  # not configured: the peer
    assert get(app_with("X-Real-IP")).json()["client_ip"] == "198.51.100.9"  # header absent: the peer
    assert client_ip({"headers": [], "client": None}, "X-Real-IP") == "unknown"


def test_refusals_are_audited_and_answered_as_before() -> None:
    import contextlib
    import logging

    from automateos_common.app import create_service_app
    from automateos_common.errors import ForbiddenError, NotFoundError, NotOwnedError
    from automateos_common.jsonutil import loads
    from automateos_common.settings import CommonSettings

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield

    async def health(_: FastAPI) -> dict[str, str]:
        return {}

    app = create_service_app("test", title="t", description="t", lifespan=lifespan, health=health,
                             settings=CommonSettings(redis_url="redis://127.0.0.1:9/0"))

    @app.get("/seen")
    def forbidden() -> None:
        raise ForbiddenError()

    @app.get("/theirs")
    def theirs() -> None:
        raise NotOwnedError("Workflow not found", resource="workflow", resource_id=7, owner_id=3)

    @app.get("/missing")
    def missing() -> None:
        raise NotFoundError("Workflow not found")

    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(loads(record.getMessage()))

    handler = Collect()
    logging.getLogger("automateos.audit").addHandler(handler)
    try:
        r = get(app, {"X-Request-ID": "r-403"})
        assert r.status_code == 403 and r.headers["x-request-id"] == "r-403"

        async def both() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return [await client.get("/theirs"), await client.get("/missing")]

        theirs_r, missing_r = asyncio.run(both())
    finally:
        logging.getLogger("automateos.audit").removeHandler(handler)
    assert (theirs_r.status_code, theirs_r.json()) == (missing_r.status_code, missing_r.json()) == (
        404, {"error": {"code": "NOT_FOUND", "message": "Workflow not found"}})
    assert [(e["event"], e["user_id"], e["service"], e["details"]) for e in lines] == [
        ("access.forbidden", None, "test", {"method": "GET", "path": "/seen"}),
        ("access.denied", 3, "test", {"resource": "workflow", "resource_id": 7, "actor_user_id": None,
                                      "method": "GET"}),
    ]
    assert lines[0]["request_id"] == "r-403" and lines[0]["ip"] == "198.51.100.9"
