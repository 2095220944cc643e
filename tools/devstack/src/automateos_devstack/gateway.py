"""The dev gateway: one origin (:8000) routing by path prefix, like nginx does in compose.

ROUTES is the single routing table; deploy/nginx.conf mirrors it and a test checks that they
agree. Bodies and responses are streamed both ways; `/internal/*` is never routed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from automateos_common.app import health_response
from automateos_common.headers import SecurityHeadersMiddleware
from automateos_common.logs import setup_logging

# (regex on the path, upstream service). First match wins; order matters.
ROUTES: list[tuple[str, str]] = [
    (r"^/api/v1/workflows/[^/]+/execute/?$", "ingress"),
    (r"^/hooks/", "ingress"),
    (r"^/api/v1/ingress/", "ingress"),
    (r"^/api/v1/(auth|users)(/|$)", "auth"),
    (r"^/api/v1/(workflows|logs|credentials|node-types)(/|$)", "workflows"),
    (r"^/api/v1/engine/", "engine"),
]
_COMPILED = [(re.compile(p), svc) for p, svc in ROUTES]
SERVICES = ("auth", "workflows", "ingress", "engine")
DEFAULT_PORTS = {"auth": 8001, "workflows": 8002, "ingress": 8003, "engine": 8004}
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade"})


def route(path: str) -> str | None:
    if path.startswith("/internal"):
        return None
    for regex, svc in _COMPILED:
        if regex.search(path):
            return svc
    return None


def upstreams_from_env() -> dict[str, str]:
    return {svc: os.environ.get(f"AUTOMATEOS_{svc.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[svc]}").rstrip("/")
            for svc in SERVICES}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


# The landing page's inline style; nothing else may load, and it may not be framed.
LANDING_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>AutomateOS</title></head>
<body style="font-family: system-ui; max-width: 40rem; margin: 3rem auto">
<h1>AutomateOS</h1><p>The API is up. The web UI is not built yet; drive it from the API:</p>
<ul>
<li><a href="/api/v1/auth/docs">auth</a> (register, token, JWKS)</li>
<li><a href="/api/v1/workflows/docs">workflows</a> (workflows, run history, node types)</li>
<li><a href="/api/v1/ingress/docs">ingress</a> (webhooks, manual runs)</li>
<li><a href="/api/v1/engine/docs">engine</a> (health)</li>
</ul></body></html>"""


# How long an upstream may take to answer (nginx.conf: proxy_read_timeout): above the longest sync
# webhook wait (the webhook node's `response.timeout_s`, SYNC_TIMEOUT_MAX_S), so its answer gets through.
UPSTREAM_READ_TIMEOUT_S = 60.0


def create_app(upstreams: dict[str, str] | None = None) -> Starlette:
    setup_logging(os.environ.get("AUTOMATEOS_LOG_LEVEL", "INFO"))  # access lines carry webhook tokens: redact
    ups = upstreams or upstreams_from_env()
    client_holder: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        client_holder["c"] = httpx.AsyncClient(
            timeout=httpx.Timeout(UPSTREAM_READ_TIMEOUT_S, connect=5.0), trust_env=False,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )
        yield
        await client_holder["c"].aclose()

    async def healthz(_: Request) -> JSONResponse:
        client = client_holder["c"]

        async def one(svc: str) -> tuple[str, str]:
            try:
                r = await client.get(f"{ups[svc]}/healthz", timeout=3.0)
                return svc, "ok" if r.status_code == 200 else f"unavailable: {r.status_code}"
            except httpx.HTTPError as exc:
                return svc, f"unavailable: {type(exc).__name__}"

        return health_response("gateway", dict(await asyncio.gather(*(one(s) for s in SERVICES))))

    async def proxy(request: Request) -> Response:
        svc = route(request.url.path)
        if svc is None:
            if request.url.path in ("/", "/index.html") and request.method in ("GET", "HEAD"):
                return HTMLResponse(LANDING, headers={"Content-Security-Policy": LANDING_CSP})
            return _error(404, "NOT_FOUND", "Not found")
        client = client_holder["c"]
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        client_host = request.client.host if request.client else ""
        prior = request.headers.get("x-forwarded-for")
        headers += [("x-forwarded-for", f"{prior}, {client_host}" if prior else client_host),
                    ("x-forwarded-proto", request.url.scheme), ("x-forwarded-host", request.headers.get("host", ""))]
        has_body = request.method not in ("GET", "HEAD", "OPTIONS", "DELETE") or "content-length" in request.headers
        upstream_req = client.build_request(
            request.method, f"{ups[svc]}{request.url.path}", params=request.url.query or None, headers=headers,
            content=request.stream() if has_body else None,
        )
        try:
            resp = await client.send(upstream_req, stream=True)
        except httpx.TimeoutException:
            return _error(504, "GATEWAY_TIMEOUT", f"The {svc} service did not answer in time")
        except httpx.HTTPError:
            return _error(502, "BAD_GATEWAY", f"The {svc} service is not reachable")
        out = StreamingResponse(resp.aiter_raw(), status_code=resp.status_code,
                                background=BackgroundTask(resp.aclose))
        # raw pairs, so repeated headers (Set-Cookie) survive; the body is re-framed, so no Content-Length.
        out.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.multi_items()
                           if k.lower() not in HOP_BY_HOP | {"content-length"}]
        return out

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    # The gateway's own answers (landing page, 404, 502, 504) get the services' security headers; proxied
    # answers already carry them and are left as they are.
    hsts = int(os.environ.get("AUTOMATEOS_HSTS_MAX_AGE_S", "0") or 0)
    return Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), Route("/{path:path}", proxy, methods=methods)],
        lifespan=lifespan, middleware=[Middleware(SecurityHeadersMiddleware, hsts_max_age_s=hsts)],
    )
