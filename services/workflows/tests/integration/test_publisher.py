"""The Redis catalog follows the workflows table: publish, unpublish, full rebuild, stale entries."""

from __future__ import annotations

import pytest
from services.workflows.tests.factories import make_workflow
from sqlmodel import Session

from automateos_common import catalog
from automateos_workflows import crud
from automateos_workflows.publisher import Publisher
from automateos_workflows.schemas import WorkflowUpdate

pytestmark = pytest.mark.integration


def test_full_sync_publishes_active_hooks_drops_stale_entries_and_marks_ready(db_engine, redis_client):
    active = make_workflow(db_engine, owner_id=3)
    inactive = make_workflow(db_engine, owner_id=3, active=False)
    redis_client.set(catalog.HOOK_KEY.format("stale-token"), "999:1")
    redis_client.hset(catalog.WF_KEY.format(999), mapping={"owner": 1, "active": 1, "version": 1, "definition": "{}"})
    pub = Publisher(db_engine, redis_client)

    assert pub.full_sync() == 2

    assert catalog.lookup_hook(redis_client, active.webhook_token) == (catalog.HookTarget(active.id, 3), True)
    assert catalog.lookup_hook(redis_client, inactive.webhook_token) == (None, True)
    assert catalog.lookup_hook(redis_client, "stale-token") == (None, True)
    assert redis_client.exists(catalog.WF_KEY.format(999)) == 0
    entry, ready = catalog.lookup_workflow(redis_client, inactive.id)
    assert ready is True
    assert (entry.owner_id, entry.is_active, entry.version) == (3, False, 1)
    assert catalog.lookup_owner(redis_client, active.id) == (3, True)


def test_update_and_delete_are_published_at_once(db_engine, redis_client):
    wf = make_workflow(db_engine)
    pub = Publisher(db_engine, redis_client)
    pub.publish(wf)
    with Session(db_engine, expire_on_commit=False) as s:
        wf = crud.update_workflow(session=s, wf=s.get(type(wf), wf.id), data=WorkflowUpdate(is_active=False))
        s.commit()
    pub.publish(wf)
    assert catalog.lookup_hook(redis_client, wf.webhook_token)[0] is None
    assert catalog.lookup_workflow(redis_client, wf.id)[0].version == 2

    pub.unpublish(wf.id, wf.webhook_token)
    assert catalog.lookup_workflow(redis_client, wf.id) == (None, False)


def test_a_miss_is_not_authoritative_until_a_full_sync(db_engine, redis_client):
    wf = make_workflow(db_engine)
    assert catalog.lookup_hook(redis_client, wf.webhook_token) == (None, False)
    Publisher(db_engine, redis_client).full_sync()
    assert catalog.lookup_hook(redis_client, "nope")[1] is True
