"""The reaper: puts runs back on the queue when they need a worker again.

That is a run whose worker died (its lease ran out) and a parked run whose wait is over. Every
worker runs one on a thread with a Redis connection of its own; claims are atomic (lease.py), so
any number of reapers together queue each due run once. Jobs go to the front of the queue: a
run that was already under way comes before new ones.
"""

from __future__ import annotations

import logging
import threading
import uuid

from redis import Redis
from redis.exceptions import RedisError

from automateos_common.lease import Leases
from automateos_common.queue import enqueue_run, make_queue

log = logging.getLogger(__name__)


class Reaper(threading.Thread):
    def __init__(self, redis_url: str, queue_name: str, *, interval_s: float = 1.0, grace_s: float = 60.0) -> None:
        super().__init__(daemon=True, name="reaper")
        self.redis_url, self.queue_name = redis_url, queue_name
        self.interval_s, self.grace_s = interval_s, grace_s
        self.stopped = threading.Event()

    def sweep(self, redis: Redis) -> list[str]:
        """Claim and queue what is due now; returns the run ids queued."""
        queue = make_queue(redis, self.queue_name)
        claimed = Leases(redis).claim_due(grace_s=self.grace_s)
        for run_id in claimed:
            enqueue_run(queue, run_id, job_id=f"{run_id}-due-{uuid.uuid4().hex[:12]}", at_front=True)
            log.info("run %s needs a worker again (resumed or recovered); queued", run_id)
        return claimed

    def run(self) -> None:
        redis = Redis.from_url(self.redis_url)  # its own pool: never shared with a forked work-horse
        while not self.stopped.wait(self.interval_s):
            try:
                self.sweep(redis)
            except RedisError as exc:
                log.warning("reaper: Redis unavailable (%s); retrying", exc)
            except Exception:
                log.exception("reaper sweep failed; retrying")

    def stop(self) -> None:
        self.stopped.set()
