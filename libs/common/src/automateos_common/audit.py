"""Security events: one JSON line each on the `automateos.audit` logger, and the Redis stream `aos:audit`.

`emit()` never raises and never waits on the network: it writes the log line, then hands the event
to a daemon thread that appends it to the stream (XADD, MAXLEN ~ `stream_maxlen`) in pipelined
batches. The auth service consumes the stream into its `security_events` table, which owners list
(`GET /api/v1/users/me/events`). An event without a user id is logged only (never sent: nobody
could list it, and floods of garbage tokens must not turn into Redis writes). While Redis does not
answer, up to `MAX_PENDING` events wait in memory and are sent when it is back; beyond that, and
when the process dies first, the table misses them (the log line was written either way).

Details never carry a secret: keys that name one are replaced by `<redacted>`, string values go
through `logs.redact` (bearer tokens, webhook tokens) and lose anything shaped like a JWT or a
refresh token, and strings are cut to `MAX_STRING` characters.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from .jsonutil import dumps_str, isoformat, utcnow
from .logs import RedactingFilter, redact

log = logging.getLogger(__name__)
audit_log = logging.getLogger("automateos.audit")

STREAM = "aos:audit"
DEFAULT_MAXLEN = 100_000
MAX_PENDING = 10_000  # events held in memory while Redis is away; older ones are dropped beyond this
MAX_STRING = 256
MAX_DETAILS = 20

# Event names (docs/api.md, "Security events").
USER_REGISTERED = "user.registered"
LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
TOKEN_REJECTED = "token.rejected"
REFRESH_TOKEN_REUSED = "refresh_token.reused"
CREDENTIAL_CREATED = "credential.created"
CREDENTIAL_READ = "credential.read"  # by the engine, to run a node
CREDENTIAL_UPDATED = "credential.updated"
CREDENTIAL_DELETED = "credential.deleted"
ACCESS_DENIED = "access.denied"  # another tenant's resource, answered 404 (listed to that resource's owner)
ACCESS_FORBIDDEN = "access.forbidden"  # any 403
EVENTS = frozenset({USER_REGISTERED, LOGIN_SUCCEEDED, LOGIN_FAILED, TOKEN_REJECTED, REFRESH_TOKEN_REUSED,
                    CREDENTIAL_CREATED, CREDENTIAL_READ, CREDENTIAL_UPDATED, CREDENTIAL_DELETED, ACCESS_DENIED,
                    ACCESS_FORBIDDEN})

_SECRET_KEY = re.compile(r"(?i)pass|secret|token|authorization|cookie|api_?key|private|credential_value|^value$")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_REFRESH = re.compile(r"aosr_[A-Za-z0-9_-]+")
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass
class _Config:
    service: str = "unknown"
    redis_url: str | None = None
    maxlen: int = DEFAULT_MAXLEN


_config = _Config()


def configure(*, service: str, redis_url: str | None, stream_maxlen: int = DEFAULT_MAXLEN) -> None:
    """Once per process (the app factory, the engine's start): who emits, and where events go."""
    global _config
    _config = _Config(service=service, redis_url=redis_url, maxlen=stream_maxlen)
    _setup_logger()
    _sender.reset()


def _setup_logger() -> None:
    # Lines of their own, bare JSON (no "time level name:" prefix), so a log shipper can parse them as they are.
    if any(getattr(h, "_automateos_audit", False) for h in audit_log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._automateos_audit = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    audit_log.addHandler(handler)
    audit_log.setLevel(logging.INFO)
    audit_log.propagate = False


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _REFRESH.sub("<redacted>", _JWT.sub("<redacted>", redact(value)))[:MAX_STRING]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict) and depth < 2:
        return _clean_details(value, depth + 1)
    if isinstance(value, list | tuple) and depth < 2:
        return [_clean(v, depth + 1) for v in list(value)[:MAX_DETAILS]]
    return _clean(str(value), depth)


def _clean_details(details: dict[Any, Any], depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in list(details.items())[:MAX_DETAILS]:
        name = str(key)[:64]
        out[name] = "<redacted>" if _SECRET_KEY.search(name) else _clean(value, depth)
    return out


def clean_request_id(value: str | None) -> str | None:
    """A client's X-Request-ID if it is a sane token (1-128 of [A-Za-z0-9._-]), else None."""
    return value if value is not None and REQUEST_ID_RE.fullmatch(value) else None


_last_id = 0
_id_lock = threading.Lock()


def new_event_id() -> str:
    """UUIDv7 hex: the event's id in the log line, the stream and the table. Time-ordered, and strictly
    increasing within a process (a second id in the same millisecond is the previous one plus one, RFC 9562
    method 3), so events of one service list in the order they happened."""
    global _last_id
    ms = time.time_ns() // 1_000_000 & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 of them are used
    value = ms << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    with _id_lock:
        if value <= _last_id:
            value = _last_id + 1
        _last_id = value
    return uuid.UUID(int=value).hex


def emit(event: str, *, user_id: int | None, ip: str | None = None, request_id: str | None = None,
         service: str | None = None, **details: Any) -> None:
    """Record a security event: the JSON log line now, the stream soon. Never raises."""
    try:
        record = {
            "id": new_event_id(), "event": str(event)[:64], "at": isoformat(utcnow()),
            "user_id": user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None,
            "ip": _clean(ip)[:64] if isinstance(ip, str) else None,
            "request_id": clean_request_id(request_id),
            "service": service or _config.service,
            "details": _clean_details(details),
        }
        line = dumps_str(record)
        audit_log.info(line)
        if record["user_id"] is not None and _config.redis_url:
            _sender.put(line)
    except Exception:  # an audit failure must never break the request that caused it
        log.exception("audit: could not record an event")


def emit_for_request(request: Any, event: str, *, user_id: int | None, **details: Any) -> None:
    """`emit` with the IP and request id of a Starlette request (set by `RequestContextMiddleware`)."""
    state = getattr(request, "state", None)
    emit(event, user_id=user_id, ip=getattr(state, "client_ip", None),
         request_id=getattr(state, "request_id", None), **details)


class _Sender:
    """The thread that XADDs queued events. Started on first use in each process (and again after a fork)."""

    def __init__(self) -> None:
        self._pending: deque[str] = deque(maxlen=MAX_PENDING)
        self._cond = threading.Condition()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self._warned_at = -1e9

    def after_fork(self) -> None:
        # The parent's lock may have been held at the fork, and its queue is the parent's to send.
        self._cond = threading.Condition()
        self._pending = deque(maxlen=MAX_PENDING)
        self._pid, self._thread, self._inflight = -1, None, 0

    def reset(self) -> None:
        with self._cond:
            self._pid = -1  # the next put starts a thread with the new configuration
            self._pending.clear()  # (events for the old destination are not sent to the new one)
            self._inflight = 0
            self._cond.notify_all()

    def put(self, line: str) -> None:
        with self._cond:
            self._pending.append(line)
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, args=(self._pid, _config), name="audit-sender",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued event was sent (tests; shutdown). False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _run(self, pid: int, config: _Config) -> None:
        from redis import Redis
        from redis.exceptions import RedisError

        assert config.redis_url is not None
        redis = Redis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=1)
        while True:
            with self._cond:
                while not self._pending and self._pid == pid:
                    self._cond.wait(1.0)
                if self._pid != pid:  # reconfigured: a newer thread took over
                    return
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), 500))]
                self._inflight = len(batch)
            try:
                with redis.pipeline(transaction=False) as pipe:
                    for line in batch:
                        pipe.xadd(STREAM, {"e": line}, maxlen=config.maxlen, approximate=True)
                    pipe.execute()
            except (RedisError, OSError) as exc:
                with self._cond:
                    if self._pid != pid:
                        return
                    self._pending.extendleft(reversed(batch))  # tried again; the oldest go first when full
                    self._inflight = 0
                now = time.monotonic()
                if now - self._warned_at > 60:
                    self._warned_at = now
                    log.warning("audit: Redis unavailable (%s); events wait in memory (at most %d)",
                                type(exc).__name__, MAX_PENDING)
                time.sleep(1.0)
                continue
            with self._cond:
                if self._pid == pid:
                    self._inflight = 0
                self._cond.notify_all()


_sender = _Sender()
os.register_at_fork(after_in_child=_sender.after_fork)


def flush(timeout_s: float = 5.0) -> bool:
    return _sender.flush(timeout_s)
