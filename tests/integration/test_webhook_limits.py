"""A workflow's webhook `rate_limit`, through the gateway, with every service a real process: checked at save
time by the workflows service, published with the hook, counted by the ingress in Redis."""

from __future__ import annotations

import copy

import httpx
import pytest
from tests.integration.helpers import Api

from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def test_a_webhook_rate_limit_refuses_beyond_it_and_runs_what_it_accepted(api: Api, echo_server):
    user = api.register()
    definition = copy.deepcopy(example_definition(f"{echo_server.url}/data"))
    definition["nodes"][0]["config"]["rate_limit"] = "lots"
    bad = api.http.post("/api/v1/workflows", json={"name": "limited", "definition": definition},
                        headers=user["headers"])
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "definition.nodes[0].config.rate_limit"

    definition["nodes"][0]["config"]["rate_limit"] = "2/minute"
    wf = api.create_workflow(user, definition)
    answers = [httpx.post(wf["webhook_url"], json={"n": i}) for i in range(3)]
    assert [r.status_code for r in answers] == [202, 202, 429]
    refused = answers[2]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and refused.headers["ratelimit-limit"] == "2"
    for r in answers[:2]:
        assert api.wait_run(user, r.json()["execution_id"])["status"] == "success"
