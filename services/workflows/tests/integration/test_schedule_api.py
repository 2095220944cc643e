"""The `schedule` trigger through the workflows API: 422s at save time, the `schedule` field, Redis in step."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from services.workflows.tests.factories import ServiceClient

from automateos_common import schedule_state
from automateos_common.schedules import to_ms

pytestmark = pytest.mark.integration
OWNER, OTHER = 1, 2


def sched_def(**config: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "tick", "type": "schedule", "config": config},
                      {"id": "t", "type": "transform", "config": {"value": "{{trigger.payload.scheduled_at}}"}}]}


def create(service: ServiceClient, definition: dict[str, Any], user: int = OWNER, **body: Any) -> Any:
    return service.client.post("/api/v1/workflows", json={"name": "s", "definition": definition, **body},
                               headers=service.headers(user))


BAD = [
    ({"cron": "0 9 * *"}, "cron", "5 fields"),
    ({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}, "timezone", "unknown time zone 'Europe/Atlantis'"),
    ({"cron": "0 9 * * *", "interval_seconds": 60}, "interval_seconds", "not both"),
    ({}, "cron", "give 'cron' or 'interval_seconds'"),
    ({"interval_seconds": "often"}, "interval_seconds", "valid integer"),
]


def test_bad_schedules_are_422_with_the_field(service: ServiceClient) -> None:
    for config, field, issue in BAD:
        r = create(service, sched_def(**config))
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert (err["code"], err["message"]) == ("VALIDATION_ERROR", "Invalid workflow definition")
        assert err["details"]["field"] == f"definition.nodes[0].config.{field}"
        assert issue in err["details"]["issue"]
    assert service.redis.zcard(schedule_state.ZSET_KEY) == 0
    r = create(service, {"nodes": [{"id": "w", "type": "webhook"}]})
    assert r.status_code == 201 and r.json()["schedule"] is None  # other triggers have none


def test_the_schedule_field_and_redis_follow_every_change(service: ServiceClient) -> None:
    r = create(service, sched_def(cron="30 2 * * *", timezone="Europe/Berlin", missed="skip"))
    assert r.status_code == 201, r.text
    wf = r.json()
    sched = wf["schedule"]
    assert {k: v for k, v in sched.items() if k != "next_fire_times"} == {
        "cron": "30 2 * * *", "interval_seconds": None, "offset_seconds": 0, "timezone": "Europe/Berlin",
        "missed": "skip"}
    times = [datetime.fromisoformat(t) for t in sched["next_fire_times"]]
    assert len(times) == 5 and times == sorted(times) and times[0] > datetime.now(timezone.utc)
    assert all(t.utcoffset() is not None and (t.hour, t.minute) in ((2, 30), (3, 0)) for t in times)
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) == to_ms(times[0])

    got = service.client.get(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OWNER)).json()
    assert got["schedule"] == sched
    listed = service.client.get("/api/v1/workflows", headers=service.headers(OWNER)).json()
    assert listed["items"][0]["schedule"] == sched

    r = service.client.put(f"/api/v1/workflows/{wf['id']}", json={"definition": sched_def(interval_seconds=90)},
                           headers=service.headers(OWNER))
    assert r.status_code == 200, r.text
    first = datetime.fromisoformat(r.json()["schedule"]["next_fire_times"][0])
    assert r.json()["schedule"]["interval_seconds"] == 90 and first.timestamp() % 90 == 0
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) == to_ms(first)

    r = service.client.put(f"/api/v1/workflows/{wf['id']}", json={"is_active": False}, headers=service.headers(OWNER))
    assert r.json()["schedule"]["next_fire_times"] == []
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) is None

    r = service.client.put(f"/api/v1/workflows/{wf['id']}", json={"is_active": True}, headers=service.headers(OWNER))
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) is not None

    # someone else's schedule workflow is 404, and does not change
    assert service.client.delete(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OTHER)).status_code == 404
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) is not None
    assert service.client.delete(f"/api/v1/workflows/{wf['id']}", headers=service.headers(OWNER)).status_code == 204
    assert schedule_state.next_fire_ms(service.redis, wf["id"]) is None
    assert service.redis.exists(schedule_state.SCHED_KEY.format(wf["id"])) == 0

