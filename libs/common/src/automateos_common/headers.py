"""Security headers on every response.

`SecurityHeadersMiddleware` is plain ASGI (no `BaseHTTPMiddleware`: that one buffers and costs a
task per request). The header list is computed once; each response start only appends it, and a
header the app set itself is never duplicated. Paths that bypass the middleware stack (the
ingress's `/hooks/...` fast path, the scheduler's stdlib health server) use `security_headers()`
directly; this module imports nothing of Starlette at run time, so they load none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

Header = tuple[bytes, bytes]

# API answers are JSON: nothing in them may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI loads its script and styles from a CDN and runs an inline script; it still may not be framed.
DOCS_CSP = "frame-ancestors 'none'"


def security_headers(*, hsts_max_age_s: int = 0, no_store: bool = False, csp: str = API_CSP) -> list[Header]:
    """The headers every response carries (lower-case names, as ASGI wants them)."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", csp.encode()),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if no_store:
        headers.append((b"cache-control", b"no-store"))
    if hsts_max_age_s > 0:
        headers.append((b"strict-transport-security", f"max-age={hsts_max_age_s}; includeSubDomains".encode()))
    return headers


class SecurityHeadersMiddleware:
    """Adds `security_headers()` to every HTTP response; `docs_prefix` paths get the Swagger UI's CSP."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0, no_store: bool = False,
                 docs_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.docs_paths = docs_paths
        self.api_headers = security_headers(hsts_max_age_s=hsts_max_age_s, no_store=no_store)
        self.docs_headers = security_headers(hsts_max_age_s=hsts_max_age_s, no_store=no_store, csp=DOCS_CSP)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs_headers if scope.get("path", "").startswith(self.docs_paths) else self.api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

