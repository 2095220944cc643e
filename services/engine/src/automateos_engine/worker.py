"""One RQ worker process (with its scheduler) draining the AutomateOS queue."""

from __future__ import annotations

import logging

from redis import Redis
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from automateos_common.logs import setup_logging
from automateos_common.nodes.registry import default_registry
from automateos_common.queue import make_queue

from . import jobs
from .reaper import Reaper
from .settings import get_settings

log = logging.getLogger(__name__)


def run_worker(*, burst: bool = False) -> bool:
    settings = get_settings()
    setup_logging(settings.log_level)
    # Import and discover before forking, so every work-horse starts warm.
    registry = default_registry()
    assert callable(jobs.run_execution)
    redis = Redis.from_url(settings.redis_url)
    queue = make_queue(redis, settings.queue_name)
    worker_cls = SimpleWorker if settings.worker_class == "simple" else Worker
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
