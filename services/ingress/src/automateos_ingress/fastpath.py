"""`/hooks/{token}` as plain ASGI, in front of FastAPI: the one route that must be fast.

A webhook needs no dependency injection, no validation of path types and no response model,
yet FastAPI's routing, middleware and request machinery cost more than the work itself (two
Redis round trips). `IngressApp` (a FastAPI) hands webhooks to `WebhookFastPath` before its own
middleware stack; it answers them with the same functions the FastAPI route uses (`payloads`,
`Acceptor.webhook_async`) and the same error envelope. The FastAPI route stays for the OpenAPI
document and answers whatever this does not take (other methods, other paths).
`tests/integration/test_fastpath.py` holds the two to the same answers.

Accepted webhooks are not access-logged (the run is their record, and a line per webhook costs
as much as accepting it); refusals are logged at INFO with the token redacted.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from automateos_common.errors import AutomateOSError, QueueFullError, RateLimitedError, RunFailedError, error_body
from automateos_common.headers import security_headers
from automateos_common.requestctx import client_ip

from .accept import Acceptor
from .payloads import HookRequest, query_pairs, raw_headers, read_body, until_disconnected
from .settings import get_settings

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})  # the FastAPI route's; others go to it (405)
_JSON = (b"content-type", b"application/json")


class WebhookFastPath:
    """ASGI middleware: webhooks answered here, anything else passed to `app`."""

    def __init__(self, app: ASGIApp | None = None, *, max_body: int | None = None,
                 hsts_max_age_s: int | None = None, client_ip_header: str | None = None) -> None:
        self.app = app
        self.max_body = get_settings().max_body_bytes if max_body is None else max_body
        self.client_ip_header = client_ip_header  # the caller's address by every service's rule (requestctx)
        hsts = get_settings().hsts_max_age_s if hsts_max_age_s is None else hsts_max_age_s
        # What the app's SecurityHeadersMiddleware adds, computed once: this path bypasses that middleware.
        self.headers = [_JSON, *security_headers(hsts_max_age_s=hsts)]

    @staticmethod
    def takes(scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX) or scope["method"] not in METHODS:
            return False
        token = path[len(PREFIX):]
        return bool(token) and "/" not in token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.takes(scope):
            await self.handle(scope, receive, send)
        else:
            assert self.app is not None
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a webhook (`takes(scope)` is true); `scope["app"]` has the acceptor in its state."""
        token = scope["path"][len(PREFIX):]
        try:
            status, body, headers = await self._accept(scope, receive, token)
        except ClientDisconnected:  # gone before its body arrived: nothing was accepted, no one to answer
            return
        except AutomateOSError as exc:
            if isinstance(exc, QueueFullError | RateLimitedError):
                pass  # a flood of these would cost a line each: the gauge logs when the queue fills and drains
            elif exc.status_code >= 500 and not isinstance(exc, RunFailedError):  # a workflow's failure is not ours
                log.error("webhook %s: %s: %s", scope["method"], type(exc).__name__, exc.message)
            else:
                log.info("webhook %s /hooks/<redacted>: %s %s", scope["method"], exc.status_code, exc.code)
            status, body = exc.status_code, orjson.dumps(error_body(exc.code, exc.message, exc.details))
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
        except Exception:
            log.exception("unhandled error in webhook")  # the traceback to the log, never to the client
            status, body, headers = 500, orjson.dumps(error_body("INTERNAL_ERROR", "Internal error")), []
        await send({"type": "http.response.start", "status": status,
                    "headers": [*self.headers, (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def _accept(self, scope: Scope, receive: Receive, token: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        request = HookRequest(method=scope["method"], headers=raw_headers(scope["headers"]),
                              query=query_pairs(scope.get("query_string", b"")), body=b"",
                              client=client_ip(scope, self.client_ip_header), gone=lambda: until_disconnected(receive))
        request.body = await read_body(_body_chunks(receive), request.header("content-length"), self.max_body)
        acceptor: Acceptor = scope["app"].state.acceptor  # set in the lifespan (automateos_ingress.main)
        reply = await acceptor.webhook_async(token, request)
        return reply.status, reply.body, reply.headers


class ClientDisconnected(Exception):
    pass


async def _body_chunks(receive: Receive) -> Any:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class IngressApp(FastAPI):
    """FastAPI, with webhooks answered by `fast_webhooks` before Starlette's middleware stack."""

    fast_webhooks: WebhookFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_webhooks is not None and WebhookFastPath.takes(scope):
            scope["app"] = self
            await self.fast_webhooks.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
