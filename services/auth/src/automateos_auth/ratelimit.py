"""Rate limits on register, token and refresh, and the slowdown of repeated failed logins.

Counting is the `limits` library's moving window (exact: `Retry-After` says when the oldest counted
attempt leaves the window), in Redis so that every auth replica shares the counts. When Redis does not
answer, counting goes on in this process's memory (logged; Redis is tried again every
`REDIS_RETRY_S`), so an outage neither opens the limits
completely nor stops logins. `AUTOMATEOS_RATE_LIMIT_STORAGE=memory` counts in memory only (one process).

Failed logins never lock an account out: after `login_slowdown_after` failures within the window,
each further attempt for that account waits before its password is checked (doubling, bounded), then
is answered normally, so the right password still gets in. The wait is an `anyio.sleep`: it holds no
thread and does not block the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from automateos_common.errors import RateLimitedError

from .settings import AuthSettings

log = logging.getLogger(__name__)

KEY_PREFIX = "aos:auth:rl"
REDIS_RETRY_S = 5.0  # after Redis failed, count in memory this long before trying it again
T = TypeVar("T")


def subject(value: str) -> str:
    """Emails are counted under a hash: no address ends up in Redis key names."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Rule:
    name: str  # e.g. "token-ip": the counter's namespace
    items: tuple[RateLimitItem, ...]


class Limiter:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.memory = MemoryStorage()
        self.redis: Storage | None = None
        if settings.rate_limit_storage == "redis":
            self.redis = RedisStorage(settings.redis_url, key_prefix=KEY_PREFIX, wrap_exceptions=True,
                                      socket_timeout=1, socket_connect_timeout=1)
        self._warned_at = -math.inf
        self._redis_retry_at = -math.inf
        self.rules = {name: Rule(name, tuple(parse_many(spec))) for name, spec in settings.rate_limit_rules().items()}

    def _on_storage(self, call: Callable[[Storage], T]) -> T:
        if self.redis is not None and time.monotonic() >= self._redis_retry_at:
            try:
                return call(self.redis)
            except StorageError as exc:
                now = time.monotonic()
                # Not asked again for a while: a Redis that times out would otherwise cost every login seconds.
                self._redis_retry_at = now + REDIS_RETRY_S
                if now - self._warned_at > 60:  # one line a minute, not one per request
                    self._warned_at = now
                    log.warning("rate-limit storage unavailable (%s): counting in this process's memory",
                                type(exc.storage_error).__name__)
        return call(self.memory)

    def hit(self, rule_name: str, key: str) -> None:
        """Count one attempt under `key`; raise RateLimitedError (429) when a limit of the rule is exceeded."""
        if not self.settings.rate_limit_enabled:
            return
        rule = self.rules[rule_name]
        for item in rule.items:
            def count(storage: Storage, item: RateLimitItem = item) -> bool:
                return MovingWindowRateLimiter(storage).hit(item, rule.name, key)

            def reset_at(storage: Storage, item: RateLimitItem = item) -> float:
                return MovingWindowRateLimiter(storage).get_window_stats(item, rule.name, key).reset_time

            if not self._on_storage(count):
                retry_after = max(1, math.ceil(self._on_storage(reset_at) - time.time()))
                raise RateLimitedError(
                    f"Too many requests; retry in {retry_after} s", headers={"Retry-After": str(retry_after)},
                    details={"retry_after_s": retry_after, "limit": str(item)},
                )

    # --- failed logins ------------------------------------------------------------------------

    def _failures_key(self, email: str) -> str:
        return f"login-failures/{subject(email)}"

    def login_delay(self, email: str) -> float:
        """Seconds to wait before checking this account's password: 0 below the threshold."""
        s = self.settings
        if s.login_slowdown_max_s <= 0:
            return 0.0
        failures = self._on_storage(lambda st: st.get(self._failures_key(email)))
        beyond = failures - s.login_slowdown_after
        if beyond < 0:
            return 0.0
        return float(min(s.login_slowdown_max_s, s.login_slowdown_base_s * 2 ** min(beyond, 30)))

    def login_failed(self, email: str) -> None:
        key = self._failures_key(email)
        self._on_storage(lambda st: st.incr(key, self.settings.login_failure_window_s))

    def login_succeeded(self, email: str) -> None:
        key = self._failures_key(email)
        self._on_storage(lambda st: st.clear(key))
