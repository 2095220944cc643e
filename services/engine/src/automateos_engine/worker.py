"""One RQ worker process (with its scheduler) draining the AutomateOS queue."""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from automateos_common.logs import setup_logging
from automateos_common.nodes.registry import default_registry
from automateos_common.queue import make_queue

from . import jobs
from .reaper import Reaper
from .settings import get_settings

log = logging.getLogger(__name__)

# RQ 3.0's worker loop sends its own heartbeat (HSET + 2 EXPIREs, one round trip each) before and
# after every dequeue and after every job, and reads the suspension flag before every job: about a
# dozen round trips a job, over half of what a short run costs. Once a second is plenty for both
# (the worker's key lives `worker_ttl` = 420 s; `rq suspend` is noticed within a second). The
# heartbeats RQ sends inside a pipeline with a job's own bookkeeping are left alone.
QUIET_S = 1.0


class _LessChatty:
    _beat_at = 0.0
    _suspension_checked_at = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and timeout is None:
            now = time.monotonic()
            if now - self._beat_at < QUIET_S:
                return
            self._beat_at = now
        super().heartbeat(timeout, pipeline)  # type: ignore[misc]

    def check_for_suspension(self, burst: bool) -> Any:
        now = time.monotonic()
        if now - self._suspension_checked_at < QUIET_S:
            return None
        self._suspension_checked_at = now
        return super().check_for_suspension(burst)  # type: ignore[misc]


class EngineWorker(_LessChatty, Worker):
    """RQ's forking worker (a work-horse process per job), minus the per-job chatter."""


class EngineSimpleWorker(_LessChatty, SimpleWorker):
    """RQ's in-process worker, minus the per-job chatter."""


def run_worker(*, burst: bool = False) -> bool:
    settings = get_settings()
    setup_logging(settings.log_level)
    # Import and discover before forking, so every work-horse starts warm.
    registry = default_registry()
    assert callable(jobs.run_execution)
    redis = Redis.from_url(settings.redis_url)
    queue = make_queue(redis, settings.queue_name)
    worker_cls = EngineSimpleWorker if settings.worker_class == "simple" else EngineWorker
    worker = worker_cls([queue], connection=redis, serializer=JSONSerializer)
    log.info("engine worker %s on queue %s, node types: %s", worker.name, settings.queue_name,
             ", ".join(registry.types()))
    reaper = Reaper(settings.redis_url, settings.queue_name, interval_s=settings.reaper_interval_s())
    if not burst:
        reaper.start()
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        reaper.stop()
