"""The schedules in Redis: what the engine's scheduler fires, kept by the workflows service.

    aos:schedules          ZSET  member: workflow id, score: its next fire time (Unix ms)
    aos:sched:{id}         hash  version, owner, spec (Schedule JSON; "" once it stopped being an
                                 active schedule), fp (the spec's fingerprint), next (ms), last (ms:
                                 the latest fire time fired; never fired again)
    aos:schedules:changes  channel: a workflow id whose schedule changed (wakes the schedulers)

The workflows service writes a workflow's schedule in the MULTI that writes its catalog entry
(`publish`, a script inside that MULTI). The script keeps the pending fire time when the
schedule is unchanged (a full sync or an edit of another node must not drop a time the
scheduler has not fired yet, or re-fire one it has), and refuses a version older than the one
stored (a full sync's batch read before an edit). The scheduler claims a fire time with WATCH on
the hash: the claim, the next time and the run's own writes are one MULTI/EXEC.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from redis import Redis
from redis.client import Pipeline

from .schedules import Schedule, to_ms

ZSET_KEY = "aos:schedules"
SCHED_KEY = "aos:sched:{}"
CHANGES_CHANNEL = "aos:schedules:changes"

# KEYS: hash, zset. ARGV: id, version, owner, spec ("" = no schedule), fingerprint, next fire (ms).
_PUBLISH = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if cur > tonumber(ARGV[2]) then return 0 end
if ARGV[4] == '' then
  if cur >= 0 then
    redis.call('HSET', KEYS[1], 'version', ARGV[2], 'spec', '', 'fp', '')
    redis.call('HDEL', KEYS[1], 'next')
  end
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then redis.call('PUBLISH', ARGV[7], ARGV[1]) end
  return 1
end
local pending = redis.call('ZSCORE', KEYS[2], ARGV[1])
local nxt = ARGV[6]
if pending and redis.call('HGET', KEYS[1], 'fp') == ARGV[5] then nxt = pending end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'owner', ARGV[3], 'spec', ARGV[4], 'fp', ARGV[5], 'next', nxt)
redis.call('ZADD', KEYS[2], nxt, ARGV[1])
if nxt ~= pending then redis.call('PUBLISH', ARGV[7], ARGV[1]) end
return 1
"""


def publish(pipe: Pipeline, *, workflow_id: int, owner_id: int, version: int, schedule: Schedule | None,
            now: datetime) -> None:
    """Queue the workflow's schedule state on `pipe` (a MULTI): `schedule` None when it has none (another
    trigger, inactive, or a config that no longer validates). A new or changed schedule's next fire
    time is the first after `now`."""
    if schedule is None:
        spec, fp, nxt = "", "", 0
    else:
        spec, fp, nxt = schedule.to_json(), schedule.fingerprint, to_ms(schedule.next_after(now))
    pipe.eval(_PUBLISH, 2, SCHED_KEY.format(workflow_id), ZSET_KEY,
              workflow_id, version, owner_id, spec, fp, nxt, CHANGES_CHANNEL)


def unpublish(pipe: Pipeline, workflow_id: int) -> None:
    pipe.delete(SCHED_KEY.format(workflow_id))
    pipe.zrem(ZSET_KEY, workflow_id)
    pipe.publish(CHANGES_CHANNEL, str(workflow_id))


def scheduled_ids(redis: Redis) -> set[int]:
    """Workflow ids that have any schedule state (ZSET members and hashes), for a full sync's clean-up."""
    ids = {int(m) for m in cast(list[bytes], redis.zrange(ZSET_KEY, 0, -1))}
    prefix = SCHED_KEY.format("")
    for key in redis.scan_iter(match=prefix + "*", count=1000):
        tail = key.decode()[len(prefix):]
        if tail.isdigit():
            ids.add(int(tail))
    return ids


def next_fire_ms(redis: Redis, workflow_id: int) -> int | None:
    score = redis.zscore(ZSET_KEY, workflow_id)
    return int(score) if score is not None else None
