"""`http_request`: call an HTTP API. Output: {"status", "headers", "body"} (JSON bodies parsed)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import Field, HttpUrl, StringConstraints

from ...credentials import CredentialRef, OpenedCredential, apply, parse_ref, redact
from ...errors import NodeExecutionError
from ...jsonutil import utcnow
from ..base import Node, NodeConfig, NodeContext, Templated, Text
from ..egress import EgressDenied

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
USER_AGENT = "AutomateOS/0.1 (+http_request node)"
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "html")
IDEMPOTENCY_HEADER = "Idempotency-Key"
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class HttpRequestConfig(NodeConfig):
    url: Templated[HttpUrl] = Field(description="http(s) URL; may be a {{...}} reference.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, Text] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON value, or text; '{{trigger.payload}}' forwards the payload.")
    body_type: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: objects, lists, numbers and booleans as JSON, strings as text."
    )
    timeout: float = Field(default=30.0, gt=0, le=300, description="Seconds for the whole request.")
    follow_redirects: bool = True
    fail_on_status: bool = Field(
        default=False,
        description="Fail the step on a 4xx/5xx answer. Without it, a 5xx or 429 still fails the step when the "
                    "node's retry policy retries that kind of error (so that it is tried again).",
    )
    credential: CredentialRef | None = Field(
        default=None,
        description="A credential of the workflow's owner, by id or name (never a value): its header, bearer "
                    "token, basic auth or API key is added to the request; its value never reaches the run history.",
    )
    idempotency_key: bool | HeaderName = Field(
        default=False,
        description="Send a key that is the same on every attempt of this step (retries, recovery after a "
                    "crash), so the API can drop duplicates: true sends it as 'Idempotency-Key', a string names "
                    "the header instead. A header configured under that name wins.",
    )


def _encode_body(config: HttpRequestConfig, headers: dict[str, str]) -> dict[str, Any]:
    body = config.body
    if body is None or config.method == "GET":
        return {}
    has_type = any(k.lower() == "content-type" for k in headers)
    if config.body_type == "json" or (config.body_type == "auto" and not isinstance(body, str)):
        if isinstance(body, str) and config.body_type == "json":
            content = body.encode()
        else:
            content = orjson.dumps(body)
        if not has_type:
            headers["Content-Type"] = "application/json"
        return {"content": content}
    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    if not has_type:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return {"content": text.encode()}


def _decode_body(resp: httpx.Response, raw: bytes) -> Any:
    if not raw:
        return None
    ctype = resp.headers.get("content-type", "").lower()
    if "json" in ctype:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if not ctype or any(t in ctype for t in _TEXT_TYPES):
        return raw.decode(resp.encoding or "utf-8", errors="replace")
    return {"encoding": "base64", "content_type": ctype, "data": base64.b64encode(raw).decode()}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, by the RFC 5322 convention the parser follows
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - utcnow()).total_seconds())


def _status_error(ctx: NodeContext, config: HttpRequestConfig, url: str,
                  resp: httpx.Response) -> NodeExecutionError | None:
    """The error a status fails the step with, or None when the answer is the step's output."""
    status = resp.status_code
    message = f"{config.method} {url} answered {status}"
    if status == 429 or status >= 500:
        kind = "429" if status == 429 else "5xx"
        if config.fail_on_status or kind in ctx.retry_on:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            return NodeExecutionError(message, kind=kind, retry_after=retry_after)
        return None
    if config.fail_on_status and status >= 400:
        return NodeExecutionError(message)
    return None


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 1 else f"{value:g}s"


# oauth2_client access tokens, by credential id and a digest of its fields: a new value fetches a new token,
# and an id SQLite gives again to another owner's credential never finds the old one's token.
_TOKENS: dict[tuple[int, bytes], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()
TOKEN_EXPIRY_MARGIN_S = 30.0


def client_credentials_token(ctx: NodeContext, cred: OpenedCredential) -> str:
    """An access token from the credential's token URL (OAuth 2.0 client-credentials grant), cached until
    shortly before it expires."""
    key = (cred.id, hashlib.sha256(orjson.dumps(cred.fields, option=orjson.OPT_SORT_KEYS)).digest())
    with _TOKENS_LOCK:
        cached = _TOKENS.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
    f = cred.fields
    form = {"grant_type": "client_credentials"}
    if f.get("scopes"):
        form["scope"] = " ".join(f["scopes"])
    where = f"the token URL of credential '{cred.name}'"
    try:
        resp = ctx.http().post(str(f["token_url"]), data=form, auth=(f["client_id"], f["client_secret"]),
                               headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                               timeout=ctx.remaining(30.0), follow_redirects=False)
    except EgressDenied as exc:
        raise NodeExecutionError(str(exc)) from None
    except httpx.TimeoutException:
        raise NodeExecutionError(f"{where} timed out", kind="timeout") from None
    except httpx.TransportError as exc:
        raise NodeExecutionError(f"{where} failed: {type(exc).__name__}", kind="connection_error") from None
    try:
        data = resp.json() if resp.status_code == 200 else None
    except ValueError:
        data = None
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        # The answer itself is not shown: a token endpoint's error may echo what it was sent.
        raise NodeExecutionError(f"{where} answered {resp.status_code} without an access token",
                                 kind="5xx" if resp.status_code >= 500 else None)
    expires_in = data.get("expires_in") if isinstance(data, dict) else None
    ttl = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 3600.0
    with _TOKENS_LOCK:
        for k in [k for k in _TOKENS if k[0] == cred.id]:
            del _TOKENS[k]  # an older version's token
        _TOKENS[key] = (token, time.monotonic() + max(0.0, ttl - TOKEN_EXPIRY_MARGIN_S))
    return token


def _with_credential(ctx: NodeContext, config: HttpRequestConfig, headers: dict[str, str],
                     query: dict[str, Any]) -> list[str]:
    """Adds the credential to headers and query; returns the strings to keep out of the step's record."""
    if config.credential is None:
        return []
    cred = ctx.credential(parse_ref(config.credential))
    secrets = cred.secret_values()
    token = client_credentials_token(ctx, cred) if cred.type == "oauth2_client" else None
    if token is not None:
        secrets.append(token)
    try:
        applied = apply(cred, token)
    except ValueError as exc:  # a webhook_secret saved before the check, or renamed into place
        raise NodeExecutionError(f"credential '{cred.name}': {exc}") from None
    for name, value in applied.headers.items():
        for k in [k for k in headers if k.lower() == name.lower()]:
            del headers[k]  # the credential's header wins over a configured one of the same name
        headers[name] = value
    query.update(applied.query)
    return secrets


class HttpRequestNode(Node):
    type = "http_request"
    title = "HTTP request"
    description = "Calls a URL (GET/POST/PUT/PATCH/DELETE) and outputs status, headers and body."
    Config = HttpRequestConfig

    def run(self, ctx: NodeContext, config: HttpRequestConfig, input: Any) -> dict[str, Any]:
        headers = dict(config.headers)
        query: dict[str, Any] = dict(config.query)
        secrets = _with_credential(ctx, config, headers, query)
        try:
            return self._request(ctx, config, headers, query, secrets)
        except NodeExecutionError as exc:
            if secrets:
                exc.message = redact(exc.message, secrets)
                exc.args = (exc.message,)
            raise

    def _request(self, ctx: NodeContext, config: HttpRequestConfig, headers: dict[str, str], query: dict[str, Any],
                 secrets: list[str]) -> dict[str, Any]:
        # Header names are case-insensitive: a configured "user-agent" replaces ours, not joins it.
        if not any(k.lower() == "user-agent" for k in headers):
            headers["User-Agent"] = USER_AGENT
        if config.idempotency_key:
            name = IDEMPOTENCY_HEADER if config.idempotency_key is True else config.idempotency_key
            if not any(k.lower() == name.lower() for k in headers):
                headers[name] = ctx.idempotency_key
        kwargs = _encode_body(config, headers)
        url = str(config.url)
        # Merged into the URL's own query: httpx's `params=` replaces it (https://x/?page=2 lost page=2).
        target = httpx.URL(url).copy_merge_params(query) if query else url
        # The node's own timeout (ctx.deadline), when shorter, bounds the request too.
        timeout = ctx.remaining(config.timeout)
        # httpx's timeout bounds each connect/read; this bounds the whole body (a slow drip holds a worker).
        deadline = time.monotonic() + timeout
        try:
            with ctx.http().stream(
                config.method, target, headers=headers, timeout=timeout,
                follow_redirects=config.follow_redirects, **kwargs,
            ) as resp:
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("response took longer than the timeout", request=resp.request)
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise NodeExecutionError(f"response body larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
        except EgressDenied as exc:
            raise NodeExecutionError(str(exc)) from None
        except httpx.TimeoutException:
            raise NodeExecutionError(f"{config.method} {url} timed out after {_seconds(timeout)}",
                                     kind="timeout") from None
        except httpx.TooManyRedirects:
            raise NodeExecutionError(f"{config.method} {url}: too many redirects") from None
        except httpx.TransportError as exc:
            raise NodeExecutionError(f"{config.method} {url} failed: {type(exc).__name__}: {exc}",
                                     kind="connection_error") from None
        error = _status_error(ctx, config, url, resp)
        if error is not None:
            raise error
        out_headers: dict[str, str] = {}
        for k, v in resp.headers.multi_items():
            out_headers[k] = f"{out_headers[k]}, {v}" if k in out_headers else v
        out = {"status": resp.status_code, "headers": out_headers, "body": _decode_body(resp, raw)}
        # An API that echoes the request (httpbin, an error page) must not put the secret into history.
        return redact(out, secrets) if secrets else out
