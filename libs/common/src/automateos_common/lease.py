"""Run leases and due times: how a run outlives the worker that was running it.

RQ alone recovers a SIGKILLed job slowly (its heartbeat TTL, then the next maintenance pass), so
the engine keeps its own, short lease per run, and one sorted set of due times:

    aos:lease:{run}   the token of the worker running the run; expires unless renewed (PX)
    aos:due           run id -> Unix time when someone must look at the run again:
                        running: when its lease runs out (renewed with the lease)
                        waiting: its `resume_at` (a delay or a retry's back-off)

A reaper in every worker claims what is due (`claim_due`, one Lua script, so two reapers never
claim the same run) and puts a job for it on the queue. A run whose lease is still alive is not
claimed; its due time is moved to the lease's end. A claim itself expires after `grace_s`: if
the reaper died before the job was on the queue, another one claims the run again. The worker
that takes the job must hold the lease (`acquire`) before it touches the run; a second job for
the same run finds the lease taken, or the run finished, and does nothing.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

from .fastredis import CommandList

LEASE_KEY = "aos:lease:{}"
DUE_KEY = "aos:due"

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"""

# A pick-up in one round trip: _ACQUIRE, the run's hash, and, for a run that has not pinned its
# definition yet, its workflow's catalog entry (the workflow id is read from the run's meta JSON).
# As a Lua function, so that a script of its own (the engine's dequeue) can pick up in its round trip.
# Returns {acquired, run hash (flat), catalog entry (flat, or empty), catalog ready (0/1)}.
ACQUIRE_AND_READ_FN = """
local function acquire_and_read(lease, due, run_key, token, ms, due_at, run_id, catalog_prefix, ready_key)
  local acquired = 0
  if redis.call('SET', lease, token, 'NX', 'PX', ms) then
    redis.call('ZADD', due, due_at, run_id)
    acquired = 1
  end
  local run = redis.call('HGETALL', run_key)
  local entry, ready = {}, 0
  if acquired == 1 and redis.call('HEXISTS', run_key, 'definition') == 0 then
    local meta = redis.call('HGET', run_key, 'meta')
    if meta then
      local ok, decoded = pcall(cjson.decode, meta)
      if ok and type(decoded) == 'table' and type(decoded['workflow_id']) == 'number' then
        entry = redis.call('HGETALL', catalog_prefix .. string.format('%d', decoded['workflow_id']))
        ready = redis.call('EXISTS', ready_key)
      end
    end
  end
  return {acquired, run, entry, ready}
end
"""
# KEYS: lease, due, run hash. ARGV: token, ms, due time, run id, catalog key prefix, catalog ready key.
_ACQUIRE_AND_READ = ACQUIRE_AND_READ_FN + """
return acquire_and_read(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"""

# ARGV: token, run id, due time ('' = nothing due: the run finished or was paused).
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[2]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
return 1
"""

# KEYS[1] = aos:due; ARGV: now, grace_s, limit, lease key prefix.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, run in ipairs(due) do
  local pttl = redis.call('PTTL', ARGV[4] .. run)
  if pttl > 0 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + pttl / 1000.0, run)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), run)
    table.insert(claimed, run)
  end
end
return claimed
"""


def lease_key(run_id: str) -> str:
    return LEASE_KEY.format(run_id)


def _call(script: Script, source: str, keys: list[str], args: list[Any], pipe: Pipeline | CommandList | None) -> Any:
    """A script directly (EVALSHA, loaded on first use), or queued in `pipe` as EVAL with its source:
    redis-py checks a pipeline's registered scripts with SCRIPT EXISTS first, one more round trip on
    every execute; EVAL costs only the source's bytes (Redis keeps the compiled script by its SHA)."""
    if pipe is None:
        return script(keys=keys, args=args)
    return pipe.eval(source, len(keys), *keys, *args)


class Leases:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._acquire_and_read = redis.register_script(_ACQUIRE_AND_READ)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._claim = redis.register_script(_CLAIM)

    def acquire(self, run_id: str, token: str, ttl_s: float, *, pipe: Pipeline | CommandList | None = None) -> bool:
        """Take the run's lease if nobody holds it; its due time becomes the lease's end.

        With `pipe`, the call is queued there and its answer comes from `pipe.execute()`."""
        ms = max(1, int(ttl_s * 1000))
        return bool(_call(self._acquire, _ACQUIRE, [lease_key(run_id), DUE_KEY],
                          [token, ms, time.time() + ttl_s, run_id], pipe))

    def acquire_and_read(self, run_id: str, token: str, ttl_s: float, *, run_key: str, catalog_prefix: str,
                         ready_key: str, pipe: Pipeline | CommandList | None = None) -> Any:
        """`acquire`, and read the run's hash and (when the lease was taken and the run has no pinned
        definition) its workflow's catalog hash, in one script: a worker's pick-up in one round trip.

        Answers [acquired (0/1), run hash (flat list), catalog hash (flat list, empty when not read or
        absent), catalog ready (0/1)]; with `pipe`, from `pipe.execute()`."""
        ms = max(1, int(ttl_s * 1000))
        return _call(self._acquire_and_read, _ACQUIRE_AND_READ, [lease_key(run_id), DUE_KEY, run_key],
                     [token, ms, time.time() + ttl_s, run_id, catalog_prefix, ready_key], pipe)

    def renew(self, run_id: str, token: str, ttl_s: float, *, pipe: Pipeline | CommandList | None = None) -> bool:
        """Extend our lease; False when it is no longer ours (it expired and someone took the run)."""
        ms = max(1, int(ttl_s * 1000))
        return bool(_call(self._renew, _RENEW, [lease_key(run_id), DUE_KEY],
                          [token, ms, time.time() + ttl_s, run_id], pipe))

    def release(self, run_id: str, token: str, *, due_at: float | None,
                pipe: Pipeline | CommandList | None = None) -> bool:
        """Give the lease up; `due_at` (Unix time) is when the run needs a worker again, None: never.

        With `pipe`, the call is queued there (with the run's last write, say) and answers on execute."""
        arg: Any = "" if due_at is None else repr(float(due_at))
        return bool(_call(self._release, _RELEASE, [lease_key(run_id), DUE_KEY], [token, run_id, arg], pipe))

    def holder(self, run_id: str) -> str | None:
        raw = self.redis.get(lease_key(run_id))
        return raw.decode() if isinstance(raw, bytes) else None

    def claim_due(self, *, now: float | None = None, grace_s: float = 60.0, limit: int = 100) -> list[str]:
        """Runs that need a worker now: their lease ran out, or their wait is over."""
        res: Any = self._claim(keys=[DUE_KEY], args=[time.time() if now is None else now, grace_s, limit,
                                                     LEASE_KEY.format("")])
        return [r.decode() if isinstance(r, bytes) else str(r) for r in res]

    @staticmethod
    def set_due(pipe: Pipeline | Redis, run_id: str, at: float) -> None:
        pipe.zadd(DUE_KEY, {run_id: at})

    @staticmethod
    def clear_due(pipe: Pipeline | Redis, run_id: str) -> None:
        pipe.zrem(DUE_KEY, run_id)

    def due_at(self, run_id: str) -> float | None:
        score = self.redis.zscore(DUE_KEY, run_id)
        return None if score is None else float(score)
