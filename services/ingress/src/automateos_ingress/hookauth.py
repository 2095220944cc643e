"""Webhook authentication: the trigger's `auth` option checked against the request before anything starts.

Kinds (the `webhook` node's `auth`): `header` (a shared token in a header), `basic` (HTTP Basic), and
`hmac` (HMAC-SHA256 of the raw body, GitHub's `X-Hub-Signature-256: sha256=<hex>`, or Stripe's
`t=<unix time>,v1=<hex>` over `{t}.{body}` within a tolerance window). Every comparison is constant time
(`hmac.compare_digest`). A refusal is one answer for every kind of failure (401, `WebhookAuthError`);
only the log says which check failed, and never with the token, signature or secret.

Secrets: the option names a credential by reference only (hook entries sit in Redis). The ingress does
not hold the master keys: it asks the workflows service for the opened credential of *this hook's*
trigger (`GET /internal/v1/hooks/{token}/auth`), and keeps it in memory with the hook entry, under the
same rule as the HookCache: only while announcements are arriving, forgotten with the entry when its
announcement comes (HookCache.listeners), and a fetch that an announcement overtook is not kept. The
workflows service republishes every workflow using a credential it creates, updates or deletes, so a
rotated value applies as soon as the announcement arrives. Without a live HookCache every request
fetches (slow, never stale). Concurrent requests of one hook share one fetch.
A credential that is missing or of the wrong type fails closed (401); the workflows service unreachable
is 503, never an accepted request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from automateos_common.catalog import FORGET_ALL, HookTarget
from automateos_common.errors import WebhookAuthError
from automateos_common.nodes.builtin.webhook import AUTH_CREDENTIAL_TYPES

from .hookcache import HookCache
from .payloads import HookRequest

log = logging.getLogger(__name__)

# The opened credential of a hook's `auth` ({"id", "type", "version", "fields"}), None when it is missing.
Record = dict[str, Any] | None
Fetch = Callable[[str], Awaitable[Record]]


def _matches(given: str, expected: bytes, encoding: str) -> bool:
    if encoding == "hex":
        return hmac.compare_digest(given.strip().lower().encode("ascii", "replace"), expected.hex().encode())
    return hmac.compare_digest(given.strip().encode("ascii", "replace"), base64.b64encode(expected))


def _hmac_reason(auth: dict[str, Any], secret: bytes, request: HookRequest, now: float) -> str | None:
    value = request.header(str(auth.get("header", "X-Hub-Signature-256")).lower())
    if not value:
        return "no signature header"
    encoding = str(auth.get("encoding", "hex"))
    if auth.get("format", "plain") == "plain":
        prefix = str(auth.get("prefix", "sha256="))
        if not value.startswith(prefix):
            return "signature header without its prefix"
        expected = hmac.new(secret, request.body, hashlib.sha256).digest()
        return None if _matches(value[len(prefix):], expected, encoding) else "signature mismatch"
    stamp, signatures = None, []
    for item in value.split(","):
        key, _, val = item.strip().partition("=")
        if key == "t":
            stamp = val
        elif key == "v1":
            signatures.append(val)
    if stamp is None or not stamp.isdigit() or not signatures:
        return "malformed signature header"
    if abs(now - int(stamp)) > int(auth.get("tolerance_s", 300)):
        return "timestamp outside the tolerance window"
    expected = hmac.new(secret, stamp.encode() + b"." + request.body, hashlib.sha256).digest()
    # Every candidate is compared (no early exit): the time taken says nothing about which one matched.
    ok = [_matches(sig, expected, encoding) for sig in signatures]
    return None if any(ok) else "signature mismatch"


def _basic_reason(fields: dict[str, Any], request: HookRequest) -> str | None:
    value = request.header("authorization") or ""
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return "no basic credentials"
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return "malformed basic credentials"
    if not sep:
        return "malformed basic credentials"
    user_ok = hmac.compare_digest(user, str(fields.get("username", "")).encode())
    password_ok = hmac.compare_digest(password, str(fields.get("password", "")).encode())
    return None if user_ok and password_ok else "wrong username or password"


def refusal(auth: dict[str, Any], record: Record, request: HookRequest, *, now: float) -> str | None:
    """Why `request` fails `auth` (for the log, never for the client); None when it passes."""
    kind = str(auth.get("type"))
    if kind not in AUTH_CREDENTIAL_TYPES:
        return f"unknown authentication type {kind!r}"
    if record is None:
        return "its credential is missing (deleted?)"
    if record.get("type") not in AUTH_CREDENTIAL_TYPES[kind]:
        return f"its credential is a {record.get('type')} credential"
    fields: dict[str, Any] = record.get("fields") or {}
    if kind == "basic":
        return _basic_reason(fields, request)
    secret = str(fields.get("secret", "")).encode()
    if not secret:
        return "its credential has no secret"
    if kind == "header":
        given = request.header(str(auth.get("header", "X-Webhook-Token")).lower())
        if not given:
            return "no token header"
        return None if hmac.compare_digest(given.encode("utf-8", "replace"), secret) else "wrong token"
    return _hmac_reason(auth, secret, request, now)


def dropped_headers(auth: dict[str, Any] | None) -> tuple[str, ...]:
    """Request headers that carry the secret itself, kept out of `trigger.headers` (a signature is no secret;
    `authorization` is always dropped)."""
    if auth and auth.get("type") == "header":
        return (str(auth.get("header", "X-Webhook-Token")).lower(),)
    return ()


class HookAuth:
    """Checks webhooks against their trigger's `auth`, with each hook's opened credential kept in memory."""

    def __init__(self, fetch: Fetch, hooks: HookCache | None = None, *, ttl_s: float = 300.0,
                 max_entries: int = 10_000) -> None:
        self._fetch = fetch
        self.hooks = hooks
        self.ttl_s = ttl_s  # a bound on how long a value is trusted without its entry changing
        self.max_entries = max_entries
        self.generation = 0  # bumped by every forget: a fetch that one overtook is not kept
        self._held: dict[str, tuple[HookTarget, Record, float]] = {}
        self._inflight: dict[str, tuple[HookTarget, asyncio.Future[Record]]] = {}
        if hooks is not None:
            hooks.listeners.append(self.forget)

    def forget(self, token: str) -> None:
        self.generation += 1
        if token == FORGET_ALL:
            self._held.clear()
            self._inflight.clear()
        else:
            self._held.pop(token, None)
            self._inflight.pop(token, None)

    async def _record(self, token: str, target: HookTarget) -> Record:
        live = self.hooks is not None and self.hooks.live
        held = self._held.get(token) if live else None
        if held is not None and held[0] == target and held[2] > time.monotonic():
            return held[1]
        flying = self._inflight.get(token) if live else None
        if flying is not None and flying[0] == target:  # many requests at once after a change: one fetch
            return await asyncio.shield(flying[1])
        generation = self.generation
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        if live:
            self._inflight[token] = (target, future)
        try:
            record = await self._fetch(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when no one else waited
            raise
        finally:
            if self._inflight.get(token, (None, None))[1] is future:
                del self._inflight[token]
        future.set_result(record)
        if live and generation == self.generation:
            if len(self._held) >= self.max_entries:
                self._held.clear()
            self._held[token] = (target, record, time.monotonic() + self.ttl_s)
        return record

    async def check(self, token: str, target: HookTarget, request: HookRequest) -> None:
        """Raise WebhookAuthError unless `request` passes the target's `auth` (a no-op without one)."""
        auth = target.options.get("auth")
        if not auth:
            return
        record = await self._record(token, target)
        reason = refusal(auth, record, request, now=time.time())
        if reason is not None:
            log.info("webhook of workflow %s refused: %s authentication: %s", target.workflow_id,
                     auth.get("type"), reason)
            challenge = f'Basic realm="{auth.get("realm", "AutomateOS")}"' if auth.get("type") == "basic" else None
            raise WebhookAuthError(challenge=challenge)
