"""Every response of a service app carries the security headers; CORS answers configured origins only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from automateos_common.app import create_service_app
from automateos_common.settings import CommonSettings

BASE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
        "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
        "cross-origin-resource-policy": "same-origin"}


def make_app(**settings: object) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    async def health(app: FastAPI) -> dict[str, str]:
        return {"x": "ok"}

    no_store = bool(settings.pop("no_store", False))
    app = create_service_app("demo", title="demo", description="demo", lifespan=lifespan, health=health,
                             settings=CommonSettings.model_validate(settings), no_store=no_store)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    @app.get("/cached")
    def cached() -> dict[str, str]:
        return {}

    return app


class Client:
    """Requests to the app in this process (httpx's ASGI transport; a 500 is answered, not raised)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", path, **kwargs)


def headers_of(response) -> dict[str, str]:
    return {k: response.headers[k] for k in BASE if k in response.headers}


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/healthz", 200), ("GET", "/nope", 404), ("DELETE", "/healthz", 405), ("GET", "/boom", 500),
])
def test_every_answer_has_the_headers(method, path, status):
    client = Client(make_app())
    r = client.request(method, path)
    assert r.status_code == status
    assert headers_of(r) == BASE
    assert "strict-transport-security" not in r.headers  # not configured
    assert "cache-control" not in r.headers
    if status == 500:
        assert "secret" not in r.text


def test_hsts_and_no_store_when_asked():
    client = Client(make_app(hsts_max_age_s=600, no_store=True))
    r = client.get("/cached")
    assert r.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
    assert r.headers["cache-control"] == "no-store"
    assert headers_of(r) == BASE


def test_swagger_ui_may_load_its_assets_but_not_be_framed():
    client = Client(make_app())
    r = client.get("/api/v1/demo/docs")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert r.headers["x-frame-options"] == "DENY"


def test_no_cors_by_default():
    client = Client(make_app())
    pre = client.options("/healthz", headers={"Origin": "https://app.example.com",
                                              "Access-Control-Request-Method": "GET"})
    r = client.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-origin" not in r.headers


def test_cors_answers_configured_origins_only():
    client = Client(make_app(cors_origins="https://app.example.com, http://localhost:5173/"))
    pre = client.options("/healthz", headers={"Origin": "https://app.example.com",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "authorization"})
    ok = client.get("/healthz", headers={"Origin": "http://localhost:5173"})
    other = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    bad_pre = client.options("/healthz", headers={"Origin": "https://evil.example.com",
                                                  "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    assert headers_of(pre) == BASE  # preflights are answered by CORS middleware, still with the headers
    assert ok.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in other.headers
    assert bad_pre.status_code == 400
    assert bad_pre.json() == {"error": {"code": "BAD_REQUEST", "message": "CORS preflight refused",
                                        "details": {"issue": "Disallowed CORS origin"}}}
    assert "access-control-allow-origin" not in bad_pre.headers
    assert "access-control-allow-credentials" not in pre.headers


@pytest.mark.parametrize("value", ["*", "app.example.com", "https://app.example.com/path", "ftp://x"])
def test_bad_cors_origins_are_refused_at_start(value):
    with pytest.raises(ValueError, match="is not an origin"):
        CommonSettings(cors_origins=value)
