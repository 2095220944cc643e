"""Turning an HTTP request into trigger data: {"payload", "headers", "query", "method"}.

payload by Content-Type: JSON parsed (invalid JSON kept as text: the delivery is never
lost), form-encoded as an object, text as a string, anything else as
{"encoding": "base64", "content_type", "data"}; an empty body is null.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import orjson

from automateos_common.errors import PayloadTooLargeError
from automateos_common.internal import INTERNAL_HEADER

# Credentials of the caller are not workflow data and never go into run history; hop-by-hop
# headers describe the connection, not the request.
DROPPED_HEADERS = frozenset({
    "authorization", "cookie", "proxy-authorization", INTERNAL_HEADER.lower(),
    "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
})


async def read_body(stream: Any, content_length: str | None, limit: int) -> bytes:
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLargeError(f"Body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"Body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _multi(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            out[k] = [*out[k], v] if isinstance(out[k], list) else [out[k], v]
        else:
            out[k] = v
    return out


def parse_payload(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if "json" in ctype or not ctype:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    if ctype == "application/x-www-form-urlencoded":
        try:
            return _multi([(k, v) for k, vs in parse_qs(body.decode(), keep_blank_values=True).items() for v in vs])
        except UnicodeDecodeError:
            pass
    if not ctype or ctype.startswith("text/") or "json" in ctype or "xml" in ctype or "form" in ctype:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"encoding": "base64", "content_type": ctype or None, "data": base64.b64encode(body).decode()}


def trigger_data(*, payload: Any, headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]],
                 method: str, drop: Iterable[str] = ()) -> dict[str, Any]:
    """`headers` and `query` as (name, value) pairs in request order (Starlette's `headers.items()`,
    `query_params.multi_items()`, or `raw_headers`/`query_pairs` of the ASGI scope); `drop`: more
    lower-case header names to leave out (a trigger's secret-carrying header)."""
    dropped = DROPPED_HEADERS.union(drop) if drop else DROPPED_HEADERS
    return {
        "payload": payload,
        "headers": {k: v for k, v in headers if k.lower() not in dropped},
        "query": _multi(list(query)),
        "method": method,
    }


async def until_disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    """Return when the ASGI `receive` (whose body was read) reports the client gone."""
    while (await receive())["type"] != "http.disconnect":
        pass


def raw_headers(scope_headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """An ASGI scope's headers as Starlette's `Headers.items()` gives them (lower-case names, latin-1)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope_headers]


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """An ASGI scope's query string as Starlette's `QueryParams.multi_items()` gives it."""
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


@dataclass(slots=True)
class HookRequest:
    """A webhook request as the acceptor sees it, whichever way it came in (the fast path or the route)."""

    method: str
    headers: list[tuple[str, str]]  # lower-case names, request order (`raw_headers`)
    query: list[tuple[str, str]]  # request order (`query_pairs`)
    body: bytes  # raw, as received: signatures are computed over these bytes
    client: str | None = None  # the caller's address (requestctx.client_ip: AUTOMATEOS_CLIENT_IP_HEADER, or the socket)
    gone: Callable[[], Awaitable[object]] | None = None  # returns when the client has disconnected (sync waits)
    _lookup: dict[str, str] | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        """A header's value by lower-case name; the last one when it is repeated (as `trigger.headers`)."""
        if self._lookup is None:
            self._lookup = dict(self.headers)
        return self._lookup.get(name)

    def trigger_data(self, drop: Iterable[str] = ()) -> dict[str, Any]:
        return trigger_data(payload=parse_payload(self.body, self.header("content-type")), headers=self.headers,
                            query=self.query, method=self.method, drop=drop)
