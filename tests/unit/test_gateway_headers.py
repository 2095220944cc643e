"""The dev gateway's own answers carry the services' security headers; proxied ones keep theirs."""

from __future__ import annotations

import asyncio

import httpx

from automateos_devstack.gateway import LANDING_CSP, create_app

DOWN = dict.fromkeys(("auth", "workflows", "ingress", "engine"), "http://127.0.0.1:9")  # nothing listens


def call(method: str, path: str) -> httpx.Response:
    app = create_app(DOWN)

    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                return await client.request(method, path)

    return asyncio.run(go())


def test_the_gateways_own_answers_have_the_headers():
    for method, path, status in (("GET", "/nope", 404), ("GET", "/api/v1/auth/jwks.json", 502), ("GET", "/", 200)):
        r = call(method, path)
        assert r.status_code == status
        assert (r.headers["x-content-type-options"], r.headers["x-frame-options"],
                r.headers["referrer-policy"]) == ("nosniff", "DENY", "no-referrer")
        expected_csp = LANDING_CSP if path == "/" else "default-src 'none'; frame-ancestors 'none'"
        assert r.headers.get_list("content-security-policy") == [expected_csp]
