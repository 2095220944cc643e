"""The schedule state in Redis follows the workflows table: create, activate, edit, deactivate, delete, full sync."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import Engine
from sqlmodel import Session

from automateos_common import schedule_state
from automateos_common.schedules import Schedule, from_ms
from automateos_workflows import crud
from automateos_workflows.models import Workflow
from automateos_workflows.publisher import Publisher
from automateos_workflows.schemas import WorkflowCreate, WorkflowUpdate

pytestmark = pytest.mark.integration


def sched_def(**config: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "tick", "type": "schedule", "config": config},
                      {"id": "t", "type": "transform", "config": {"value": "{{trigger.payload.scheduled_at}}"}}]}


def create(engine: Engine, definition: dict[str, Any], *, active: bool = True) -> Workflow:
    with Session(engine, expire_on_commit=False) as s:
        wf = crud.create_workflow(session=s, owner_id=7, data=WorkflowCreate(name="s", definition=definition,
                                                                               is_active=active))
        s.commit()
        return wf


def update(engine: Engine, wf: Workflow, **fields: Any) -> Workflow:
    with Session(engine, expire_on_commit=False) as s:
        wf = crud.update_workflow(session=s, wf=s.get(Workflow, wf.id), data=WorkflowUpdate(**fields))
        s.commit()
        return wf


def state(redis: Redis, wf_id: int) -> tuple[int | None, dict[str, str]]:
    raw = redis.hgetall(schedule_state.SCHED_KEY.format(wf_id))
    return schedule_state.next_fire_ms(redis, wf_id), {k.decode(): v.decode() for k, v in raw.items()}


def test_create_edit_deactivate_activate_delete(db_engine: Engine, redis_client: Redis) -> None:
    pub = Publisher(db_engine, redis_client)
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(schedule_state.CHANGES_CHANNEL)
    listener.get_message(timeout=1)

    wf = create(db_engine, sched_def(interval_seconds=3600))
    pub.publish(wf)
    nxt, h = state(redis_client, wf.id)
    assert nxt is not None and nxt % 3_600_000 == 0 and 0 < nxt - time.time() * 1000 <= 3_600_000
    assert (h["owner"], h["version"], Schedule.from_json(h["spec"])) == ("7", "1", Schedule(interval_s=3600))
    assert listener.get_message(timeout=1)["data"] == str(wf.id).encode()

    # an edit of another node keeps the pending time (and wakes nobody)
    wf = update(db_engine, wf, name="renamed")
    pub.publish(wf)
    assert state(redis_client, wf.id)[0] == nxt
    assert state(redis_client, wf.id)[1]["version"] == "2"
    assert listener.get_message(timeout=0.2) is None

    # an edit of the schedule recomputes the next time from now
    wf = update(db_engine, wf, definition=sched_def(cron="0 12 * * *", timezone="Asia/Tokyo"))
    pub.publish(wf)
    nxt2 = state(redis_client, wf.id)[0]
    assert nxt2 != nxt and from_ms(nxt2).hour == 3 and from_ms(nxt2).minute == 0  # 12:00 JST = 03:00 UTC
    assert listener.get_message(timeout=1)["data"] == str(wf.id).encode()

    # deactivating drops it from the ZSET at once; the hash keeps the version as a tombstone
    wf = update(db_engine, wf, is_active=False)
    pub.publish(wf)
    assert state(redis_client, wf.id) == (None, {"owner": "7", "version": "4", "spec": "", "fp": ""})

    wf = update(db_engine, wf, is_active=True)
    pub.publish(wf)
    assert state(redis_client, wf.id)[0] == nxt2

    # another trigger: no schedule
    wf = update(db_engine, wf, definition={"nodes": [{"id": "w", "type": "webhook"}]})
    pub.publish(wf)
    assert state(redis_client, wf.id)[0] is None

    wf = update(db_engine, wf, definition=sched_def(interval_seconds=60))
    pub.publish(wf)
    assert state(redis_client, wf.id)[0] is not None
    pub.unpublish(wf.id, wf.webhook_token)
    assert state(redis_client, wf.id) == (None, {})


def test_a_pending_past_time_survives_a_full_sync_and_an_older_version_is_refused(db_engine: Engine,
                                                                                   redis_client: Redis) -> None:
    pub = Publisher(db_engine, redis_client)
    wf = create(db_engine, sched_def(interval_seconds=60))
    pub.publish(wf)
    past = int(time.time() // 60 - 10) * 60_000  # a fire time 10 minutes ago the scheduler has not fired yet
    redis_client.zadd(schedule_state.ZSET_KEY, {str(wf.id): past})
    pub.full_sync()
    assert state(redis_client, wf.id)[0] == past  # the missed time is the scheduler's to handle, not dropped

    newer = update(db_engine, wf, definition=sched_def(interval_seconds=120))
    pub.publish(newer)
    pub.publish(wf)  # a stale copy (version 1), as a full sync's batch read before the edit would publish
    assert Schedule.from_json(state(redis_client, wf.id)[1]["spec"]).interval_s == 120


def test_full_sync_clears_inactive_other_triggers_and_deleted(db_engine: Engine, redis_client: Redis) -> None:
    pub = Publisher(db_engine, redis_client)
    live = create(db_engine, sched_def(cron="*/5 * * * *"))
    paused = create(db_engine, sched_def(cron="*/5 * * * *"), active=False)
    redis_client.zadd(schedule_state.ZSET_KEY, {"999999": 1, str(paused.id): 1})
    redis_client.hset(schedule_state.SCHED_KEY.format(999999), mapping={"version": 1, "spec": "{}"})
    pub.full_sync()
    assert state(redis_client, live.id)[0] is not None
    assert state(redis_client, paused.id)[0] is None
    assert state(redis_client, 999999) == (None, {})
