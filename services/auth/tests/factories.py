"""The auth app in this process, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from redis import Redis

from automateos_auth.main import create_app
from automateos_auth.settings import AuthSettings, get_settings

CLIENT_IP = "203.0.113.7"  # TEST-NET-3: the address requests come from unless a test says otherwise


def auth_settings(tmp_path: Path, db_url: str, redis: Redis | None, **overrides: object) -> AuthSettings:
    fields: dict[str, object] = {"database_url": db_url, "data_dir": tmp_path / "data"}
    if redis is not None:
        kw = redis.connection_pool.connection_kwargs
        fields["redis_url"] = f"redis://{kw['host']}:{kw['port']}/{kw['db']}"
    return AuthSettings.model_validate({**fields, **overrides})


@dataclass
class AuthClient:
    """The auth app in this process (its lifespan run: migrations, keys), called over httpx's ASGI
    transport from a chosen client address."""

    portal: BlockingPortal
    app: FastAPI
    settings: AuthSettings

    def request(self, method: str, path: str, *, ip: str = CLIENT_IP, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(ip, 40000), raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
                return await client.request(method, path, **kwargs)

        return self.portal.call(go)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def register(self, email: str, password: str = "correct horse battery", **kwargs: Any) -> httpx.Response:
        return self.post("/api/v1/auth/register", json={"email": email, "password": password}, **kwargs)

    def login(self, email: str, password: str = "correct horse battery", **kwargs: Any) -> httpx.Response:
        return self.post("/api/v1/auth/token", data={"username": email, "password": password}, **kwargs)

    def refresh(self, token: str, **kwargs: Any) -> httpx.Response:
        return self.post("/api/v1/auth/refresh", json={"refresh_token": token}, **kwargs)

    def me(self, access_token: str) -> httpx.Response:
        return self.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access_token}"})


def running(settings: AuthSettings) -> Iterator[AuthClient]:
    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: settings
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(app.router.lifespan_context(app)):
        yield AuthClient(portal=portal, app=app, settings=settings)
