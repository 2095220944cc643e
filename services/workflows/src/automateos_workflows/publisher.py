"""Keeps the Redis catalog (automateos_common.catalog) and the schedules (automateos_common.schedule_state)
in step with the `workflows` table."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from automateos_common import catalog, schedule_state, schedules
from automateos_common.jsonutil import utcnow
from automateos_common.nodes.registry import NodeRegistry, default_registry

from .models import Workflow

log = logging.getLogger(__name__)
SYNC_BATCH = 500


def webhook_spec(definition: dict[str, Any], registry: NodeRegistry) -> tuple[str, dict[str, Any]] | None:
    """(method, options) of the workflow's trigger on its webhook URL (asked of the trigger's plugin);
    None when it has no webhook URL."""
    for node in definition.get("nodes", []):
        cls = registry.get(node.get("type"))
        if cls is not None and cls.kind == "trigger":
            config = node.get("config") or {}
            try:
                method = cls.webhook_method(config)
                return None if method is None else (method, cls.webhook_options(config))
            except ValueError:  # saved under an older schema: no webhook until it is fixed
                return None
    return None


def entry_for(wf: Workflow, registry: NodeRegistry | None = None) -> catalog.CatalogEntry:
    assert wf.id is not None
    method, options = webhook_spec(wf.definition, registry or default_registry()) or (None, {})
    return catalog.CatalogEntry(workflow_id=wf.id, owner_id=wf.owner_id, is_active=wf.is_active,
                                version=wf.version, definition=wf.definition, webhook_token=wf.webhook_token,
                                webhook_method=method, webhook_options=options)


def publish_schedule(pipe: Pipeline, wf: Workflow) -> None:
    """Queue the workflow's schedule state: its `schedule` trigger's while it is active, else none."""
    assert wf.id is not None
    sched = schedules.schedule_of(wf.definition) if wf.is_active else None
    schedule_state.publish(pipe, workflow_id=wf.id, owner_id=wf.owner_id, version=wf.version, schedule=sched,
                           now=utcnow())


class Publisher:
    def __init__(self, engine: Engine, redis: Redis) -> None:
        self.engine = engine
        self.redis = redis
        self._dirty = threading.Event()
        self._sync_lock = threading.Lock()

    def publish(self, wf: Workflow) -> None:
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                catalog.publish(pipe, entry_for(wf))
                publish_schedule(pipe, wf)
                pipe.execute()
        except RedisError as exc:
            # The database has the change; the sync loop brings Redis up to date when it answers.
            log.warning("catalog publish of workflow %s failed (%s); full sync scheduled", wf.id, exc)
            self._dirty.set()

    def unpublish(self, workflow_id: int, webhook_token: str) -> None:
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                catalog.unpublish(pipe, workflow_id, webhook_token)
                schedule_state.unpublish(pipe, workflow_id)
                pipe.execute()
        except RedisError as exc:
            log.warning("catalog unpublish of workflow %s failed (%s); full sync scheduled", workflow_id, exc)
            self._dirty.set()

    def full_sync(self) -> int:
        """Publish every workflow, drop catalog entries the database no longer has, then mark ready."""
        with self._sync_lock:
            count, last_id = 0, 0
            while True:
                with Session(self.engine) as session:
                    batch = session.exec(
                        select(Workflow).where(col(Workflow.id) > last_id).order_by(col(Workflow.id)).limit(SYNC_BATCH)
                    ).all()
                if not batch:
                    break
                with self.redis.pipeline(transaction=False) as pipe:
                    for wf in batch:
                        catalog.publish(pipe, entry_for(wf))
                        publish_schedule(pipe, wf)
                    pipe.execute()
                count += len(batch)
                last_id = batch[-1].id or last_id
            self._drop_stale()
            self._drop_stale_schedules()
            self.redis.set(catalog.READY_KEY, "1")
            return count

    def _drop_stale(self) -> None:
        # Candidates come from Redis; the database decides. A workflow created meanwhile is
        # committed before it is published, so it is found here and kept.
        hook_prefix, wf_prefix = catalog.HOOK_KEY.format(""), catalog.WF_KEY.format("")
        tokens = {k.decode()[len(hook_prefix):] for k in self.redis.scan_iter(match=hook_prefix + "*", count=1000)}
        ids = {k.decode()[len(wf_prefix):] for k in self.redis.scan_iter(match=wf_prefix + "*", count=1000)}
        with Session(self.engine) as session:
            live_tokens = set(session.exec(select(Workflow.webhook_token).where(
                col(Workflow.webhook_token).in_(tokens), col(Workflow.is_active).is_(True))).all()) if tokens else set()
            numeric = [int(i) for i in ids if i.isdigit()]
            live_ids = {str(i) for i in session.exec(
                select(Workflow.id).where(col(Workflow.id).in_(numeric))).all()} if numeric else set()
        stale = [hook_prefix + t for t in tokens - live_tokens] + [wf_prefix + i for i in ids - live_ids]
        for start in range(0, len(stale), 1000):
            self.redis.delete(*stale[start:start + 1000])
        if stale:  # the ingress's remembered hooks may name some of these
            self.redis.publish(catalog.CHANGES_CHANNEL, catalog.FORGET_ALL)

    def _drop_stale_schedules(self) -> None:
        # Schedules of workflows the database no longer has (deleted while Redis was away). Inactive
        # ones and other triggers were cleared by the publish above.
        ids = schedule_state.scheduled_ids(self.redis)
        if not ids:
            return
        with Session(self.engine) as session:
            live = set(session.exec(select(Workflow.id).where(col(Workflow.id).in_(ids))).all())
        stale = ids - live
        if stale:
            with self.redis.pipeline(transaction=True) as pipe:
                for wf_id in stale:
                    schedule_state.unpublish(pipe, wf_id)
                pipe.execute()

    def sync_loop(self, stop: threading.Event, every_s: float) -> None:
        next_full = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_full or self._dirty.is_set():
                self._dirty.clear()
                try:
                    n = self.full_sync()
                    log.info("catalog synced: %d workflows", n)
                    next_full = now + every_s
                except Exception as exc:  # Redis or the database away: try again soon
                    log.warning("catalog sync failed: %s", exc)
                    next_full = now + 2.0
            stop.wait(1.0)
