"""Webhook deduplication: one run per delivery key within a window, decided in the enqueue's round trip.

A delivery carries a key in a header (`Idempotency-Key` by default, or one the trigger names, such as
GitHub's `X-GitHub-Delivery`). One Lua script (EVALSHA) sets `aos:dedup:{workflow_id}:{sha256(key)}` to
the new execution id with the window as its expiry, NX, and only if it was set runs the run's enqueue
commands (the very ones the plain path sends in MULTI/EXEC); otherwise it answers the first id and that
run's status. A script runs atomically, so concurrent deliveries of one key start exactly one run. The
key is hashed: any length, and no client text in Redis key names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from automateos_common.catalog import HookTarget
from automateos_common.fastredis import PipelinedRedis

from .payloads import HookRequest

KEY = "aos:dedup:{}:{}"
DEFAULT_HEADER = "idempotency-key"
DEFAULT_WINDOW_S = 86_400

# KEYS[1] the dedup key; ARGV: the new run's id, the window (s), the number of commands, then each
# command as its argument count followed by its arguments.
SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local i = 4
  for _ = 1, tonumber(ARGV[3]) do
    local n = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + n))
    i = i + n + 1
  end
  return false
end
local first = redis.call('GET', KEYS[1])
local meta = redis.call('HGET', 'aos:run:' .. first, 'meta')
if meta then return {first, cjson.decode(meta)['status']} end
return {first}
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Once:
    """A delivery's dedup key (already hashed into its Redis key) and the window it is remembered for."""

    key: str
    window_s: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    execution_id: str
    status: str | None  # None: the run has left Redis (finished and recorded); its history has it


def once_for(target: HookTarget, request: HookRequest) -> Once | None:
    """The request's dedup key under its trigger's `dedup` option (on by default); None: not deduplicated."""
    option = target.options.get("dedup")
    if option is None:  # the default (no option published): Idempotency-Key, 24 hours
        value = request.header(DEFAULT_HEADER)
        window = DEFAULT_WINDOW_S
    elif not option.get("enabled", True):
        return None
    else:
        value = request.header(str(option.get("header", DEFAULT_HEADER)).lower())
        window = int(option.get("window_s", DEFAULT_WINDOW_S))
    if not value:
        return None
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
    return Once(KEY.format(target.workflow_id, digest), window)


async def submit_once(redis: PipelinedRedis, once: Once, run_id: str,
                      commands: Sequence[Sequence[Any]]) -> Duplicate | None:
    """Run `commands` unless the key was seen within its window; then the first delivery's run."""
    args: list[Any] = [1, once.key, run_id, once.window_s, len(commands)]
    for command in commands:
        args.append(len(command))
        args.extend(command)
    try:
        reply = await redis.execute("EVALSHA", SHA, *args)
    except ResponseError as exc:
        if not str(exc).startswith("NOSCRIPT"):
            raise
        reply = await redis.execute("EVAL", SCRIPT, *args)  # loads it: later calls find it by its SHA
    if reply is None:
        return None
    first = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    status = reply[1].decode() if len(reply) > 1 and isinstance(reply[1], bytes) else None
    return Duplicate(first, status)
