"""A `schedule` workflow through the whole stack (gateway, workflows, scheduler, engine as their own
processes): its runs appear in its run history with `trigger: "schedule"`, one per fire time, and stop
at once when it is deactivated; it has no webhook, and `execute` still starts it."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import httpx
import pytest
from tests.integration.helpers import Api

pytestmark = pytest.mark.integration


def test_scheduled_runs_are_in_the_history(api: Api, pg_stack) -> None:
    user, other = api.register(), api.register()
    wf = api.create_workflow(user, {"nodes": [
        {"id": "tick", "type": "schedule", "config": {"interval_seconds": 1, "timezone": "Europe/Paris"}},
        {"id": "at", "type": "transform", "config": {"value": {"when": "{{trigger.payload.scheduled_at}}"}}}]})
    assert len(wf["schedule"]["next_fire_times"]) == 5
    assert api.http.get(f"/api/v1/workflows/{wf['id']}", headers=other["headers"]).status_code == 404
    assert httpx.post(wf["webhook_url"], json={}).status_code == 404  # no webhook, like `manual`

    def history() -> list[dict]:
        r = api.http.get(f"/api/v1/workflows/{wf['id']}/logs?limit=200", headers=user["headers"])
        return [run for run in r.json()["items"] if run["status"] == "success"]

    deadline = time.monotonic() + 20
    while len(history()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    r = api.http.put(f"/api/v1/workflows/{wf['id']}", json={"is_active": False}, headers=user["headers"])
    assert r.status_code == 200 and r.json()["schedule"]["next_fire_times"] == []
    stopped = time.monotonic()

    runs = history()
    assert len(runs) >= 3 and {run["trigger"] for run in runs} == {"schedule"}
    detail = api.wait_run(user, runs[0]["id"])
    when = detail["steps"][1]["output"]["when"]
    assert detail["payload"]["scheduled_at"] == when and detail["payload"]["timezone"] == "Europe/Paris"
    times = sorted(api.wait_run(user, run["id"])["payload"]["scheduled_at"] for run in runs)
    assert len(times) == len(set(times))
    assert all((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() == 1
               for a, b in itertools.pairwise(times))

    # deactivated: nothing more is fired (a run already queued still finishes)
    time.sleep(max(0.0, 2.5 - (time.monotonic() - stopped)))
    settled = len(api.http.get(f"/api/v1/workflows/{wf['id']}/logs?limit=200", headers=user["headers"]).json()["items"])
    time.sleep(1.5)
    assert len(api.http.get(f"/api/v1/workflows/{wf['id']}/logs?limit=200",
                            headers=user["headers"]).json()["items"]) == settled

    r = api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={"by": "hand"}, headers=user["headers"])
    assert r.status_code == 202
    run = api.wait_run(user, r.json()["execution_id"])
    assert (run["trigger"], run["status"], run["payload"]) == ("manual", "success", {"by": "hand"})
