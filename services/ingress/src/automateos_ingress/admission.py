"""Admission: the cheap refusals a webhook meets before anything is read into a run.

In order:
1. Backpressure. `QueueGauge` reads the RQ queue's length once every `queue_depth_interval_ms` (one
   background task per process, one Redis call per interval, none per webhook). Over
   `queue_max_depth` the ingress answers 503 `QUEUE_FULL` with `Retry-After` (webhooks and manual
   runs) until the depth is back below 90 % of the limit (hysteresis: no flapping at the edge).
   Counted: the runs waiting for a worker (the queue's list). Not counted: runs a worker holds, and
   parked runs (long delays, retry back-offs): they are already accepted work that waits on time, not
   on workers, and a refused webhook would not make them any cheaper.
2. Rate limits, with the `limits` library's sliding window counter in Redis (shared by every ingress
   process; two counters a key whatever the limit, so a limit of 10,000/second costs what 10/second
   does): per client address (`webhook_ip_rate_limit`) and per workflow (the webhook node's
   `rate_limit` option). 429 `RATE_LIMITED` with `Retry-After` and `RateLimit-*` headers.
   One Redis call per limit that applies; a webhook none applies to costs a dict lookup. The call is
   limits' own Lua script (`acquire_sliding_window.lua`, same keys) sent on the hot path's pipelining
   client: through limits' redis-py storage a limit cost ~230 us of CPU a webhook, more than the webhook
   itself; this way ~40 us. limits' storage still answers the window's stats for a refusal's
   `Retry-After` (a refusal only).

Redis down: the depth keeps its last reading (the run's own write then fails: 503 as before); a
limit that cannot be counted is a 503 too, never a webhook let through uncounted.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.exceptions import ResponseError

from automateos_common.catalog import HookTarget
from automateos_common.errors import QueueFullError, RateLimitedError, ServiceUnavailableError
from automateos_common.fastredis import PipelinedRedis
from automateos_common.ratelimits import parse_limits

log = logging.getLogger(__name__)

KEY_PREFIX = "aos:ingress:rl"
RESUME_RATIO = 0.9  # full at the limit, accepting again below this share of it
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1, 60
RETRY_AFTER_UNKNOWN_S = 15  # full and not draining (no engine running): a guess, not a promise
# The script SlidingWindowCounterRateLimiter.hit runs (limits' RedisStorage.acquire_sliding_window_entry).
_ACQUIRE = (importlib.resources.files("limits.resources.redis.lua_scripts")
            .joinpath("acquire_sliding_window.lua").read_text())
_ACQUIRE_SHA = hashlib.sha1(_ACQUIRE.encode()).hexdigest()


class QueueGauge:
    """The queue's depth as last read, and whether the ingress refuses new runs because of it."""

    def __init__(self, aredis: PipelinedRedis | None, queue_key: str, *, max_depth: int, interval_s: float) -> None:
        self.aredis = aredis
        self.queue_key = queue_key
        self.max_depth = max_depth
        self.resume_depth = math.floor(max_depth * RESUME_RATIO)
        self.interval_s = interval_s
        self.depth = 0
        self.full = False
        self.drain_per_s: float | None = None  # runs leaving the queue per second, smoothed; None: not seen yet
        self._last: tuple[float, int] | None = None

    def observe(self, depth: int, now: float) -> None:
        """A reading of the depth at `now` (monotonic seconds): updates `full` and the drain rate."""
        if self._last is not None and now > self._last[0]:
            # What left the queue, lower-bounded by what the depth lost: arrivals in the interval hide part of it.
            rate = max(0.0, (self._last[1] - depth) / (now - self._last[0]))
            self.drain_per_s = rate if self.drain_per_s is None else 0.7 * self.drain_per_s + 0.3 * rate
        self._last = (now, depth)
        self.depth = depth
        was_full = self.full
        if depth >= self.max_depth:
            self.full = True
        elif depth < self.resume_depth:
            self.full = False
        if self.full != was_full:
            if self.full:
                log.warning("queue full (%d runs waiting, limit %d): refusing new runs with 503", depth, self.max_depth)
            else:
                log.warning("queue drained to %d runs: accepting new runs again", depth)

    def retry_after_s(self) -> int:
        """Seconds until the queue should be back below the resume mark, at the drain rate seen."""
        if not self.drain_per_s:
            return RETRY_AFTER_UNKNOWN_S
        wait = (self.depth - self.resume_depth) / self.drain_per_s
        return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, math.ceil(wait)))

    def check(self) -> None:
        if self.full:
            retry = self.retry_after_s()
            raise QueueFullError(f"Too much work is queued; retry in {retry} s", headers={"Retry-After": str(retry)},
                                 details={"retry_after_s": retry})

    async def run(self) -> None:
        """The background task: read the depth every interval until cancelled."""
        assert self.aredis is not None
        warned_at = -math.inf
        while True:
            try:
                self.observe(int(await self.aredis.execute("LLEN", self.queue_key)), time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: keep the last reading; accepting fails on its own then
                if time.monotonic() - warned_at > 60:
                    warned_at = time.monotonic()
                    log.warning("cannot read the queue's depth: %s", type(exc).__name__)
            await asyncio.sleep(self.interval_s)


class RateLimits:
    """Per-address and per-workflow limits, counted in Redis by `limits` (its async storage on redis-py)."""

    def __init__(self, redis_url: str, *, ip_limit: str = "", aredis: PipelinedRedis | None = None) -> None:
        self.ip_items = parse_limits(ip_limit)
        self.aredis = aredis  # None: every count through limits' storage
        # async+redis://...: limits' asyncio storage; `implementation="redispy"`: redis-py's asyncio client
        # (the one the project has), not coredis. Its own connection pool, opened at the first call.
        self.storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=KEY_PREFIX,
                                    wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self._parsed: dict[str, tuple[RateLimitItem, ...]] = {}  # a workflow's option -> its items

    def workflow_items(self, options: Mapping[str, Any]) -> tuple[RateLimitItem, ...]:
        spec = options.get("rate_limit")
        if not spec:
            return ()
        items = self._parsed.get(spec)
        if items is None:
            try:
                items = parse_limits(spec)
            except ValueError:  # checked at save time; an entry from an older rule must not stop webhooks
                log.warning("ignoring an invalid rate_limit option: %r", spec)
                items = ()
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            self._parsed[spec] = items
        return items

    async def _acquire(self, item: RateLimitItem, scope: str, key: str) -> bool:
        if self.aredis is None:
            return await self.limiter.hit(item, scope, key)
        current = f"{KEY_PREFIX}:{{{item.key_for(scope, key)}}}"  # limits' key names, so its stats read them
        args = (2, f"{current}/-1", current, item.amount, item.get_expiry(), 1)
        try:
            reply = await self.aredis.execute("EVALSHA", _ACQUIRE_SHA, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            reply = await self.aredis.execute("EVAL", _ACQUIRE, *args)  # loads it for the next EVALSHA
        return bool(reply)

    async def hit(self, items: tuple[RateLimitItem, ...], scope: str, key: str) -> None:
        """Count one webhook under (scope, key) in each item; RateLimitedError when one is exceeded."""
        for item in items:
            try:
                if await self._acquire(item, scope, key):
                    continue
                reset_at = (await self.limiter.get_window_stats(item, scope, key)).reset_time
            except StorageError:
                raise ServiceUnavailableError("Rate limits cannot be counted right now; retry shortly",
                                              headers={"Retry-After": "1"}) from None
            retry = max(1, math.ceil(reset_at - time.time()))
            raise RateLimitedError(
                f"Too many requests for this {scope}; retry in {retry} s",
                headers={"Retry-After": str(retry), "RateLimit-Limit": str(item.amount), "RateLimit-Remaining": "0",
                         "RateLimit-Reset": str(retry), "RateLimit-Policy": f"{item.amount};w={item.get_expiry()}"},
                details={"scope": scope, "limit": str(item), "retry_after_s": retry},
            )

    async def aclose(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)  # the redis-py asyncio client, if it was ever opened
        if client is not None:
            await client.aclose()


class Admission:
    """The steps of the module docstring, for one ingress process."""

    def __init__(self, gauge: QueueGauge | None, limits: RateLimits | None) -> None:
        self.gauge = gauge
        self.limits = limits

    def check_queue(self) -> None:
        if self.gauge is not None:
            self.gauge.check()

    async def admit(self, target: HookTarget, client: str | None) -> None:
        """A webhook for `target` from `client`: returns, or raises the refusal (nothing is started)."""
        if self.gauge is not None:
            self.gauge.check()
        limits = self.limits
        if limits is None:
            return
        if limits.ip_items and client:
            await limits.hit(limits.ip_items, "address", client)
        if target.options:
            items = limits.workflow_items(target.options)
            if items:
                await limits.hit(items, "workflow", str(target.workflow_id))
