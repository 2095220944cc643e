"""Per-request context every service shares: the request id and the client's address.

`RequestContextMiddleware` (plain ASGI, installed by the app factory outside everything else) takes
`X-Request-ID` from the request when it is a sane token (1-128 of `[A-Za-z0-9._-]`) or makes one,
puts it and the client address in `request.state` (`request_id`, `client_ip`) and returns the id in
the `X-Request-ID` response header. The ingress's `/hooks/...` fast path bypasses it (no request id).
"""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audit import clean_request_id

REQUEST_ID_HEADER = b"x-request-id"


def client_ip(scope: Scope, header: str | None) -> str:
    """The configured header's first address (set by the proxy in front, which must overwrite it), else the
    connection's address (uvicorn applies X-Forwarded-For from FORWARDED_ALLOW_IPS: the dev gateway)."""
    if header:
        wanted = header.lower().encode("latin-1")
        for name, value in scope.get("headers", ()):
            if name == wanted:
                first: str = value.decode("latin-1").split(",")[0].strip()
                if first:
                    return first[:64]
                break
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, client_ip_header: str | None = None) -> None:
        self.app = app
        self.client_ip_header = client_ip_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                given = clean_request_id(value.decode("latin-1"))
                break
        request_id = given or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = client_ip(scope, self.client_ip_header)
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*(h for h in message.get("headers", ()) if h[0].lower() != REQUEST_ID_HEADER),
                                      header]
            await send(message)

        await self.app(scope, receive, send_with_id)
