"""Schemathesis on the workflows API: generated requests (valid and invalid) for every operation, on real
Redis and SQLite, as a signed-in user who owns a workflow. No 5xx; every answer as the OpenAPI document says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from libs.common.tests.fuzzing import (
    Served,
    fuzz_tests,
    load_schema,
    module_redis,
    serving,
)
from services.workflows.tests.factories import bearer, definition, token_verifier

from automateos_workflows.main import create_app
from automateos_workflows.settings import WorkflowsSettings, get_settings

pytestmark = pytest.mark.integration

OPENAPI = "/api/v1/workflows/openapi.json"


def service_settings(tmp: Path, db_url: str, redis_url: str) -> WorkflowsSettings:
    """As the `service` fixture's: no recorder thread, no auth service (tokens are checked against the test
    key), a queue of its own that no worker drains."""
    return WorkflowsSettings.model_validate({
        "database_url": db_url, "redis_url": redis_url, "data_dir": tmp / "data", "recorder_enabled": False,
        "auth_url": "http://127.0.0.1:9", "queue_name": "workflows-fuzz", "internal_token": "internal-test"})


schema = load_schema(lambda: create_app(service_settings(Path("/nonexistent"), "sqlite://", "redis://")))


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_server) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("workflows-fuzz")
    with module_redis(redis_server.url) as (_, redis_url):
        s = service_settings(tmp, f"sqlite:///{tmp / 'workflows.db'}", redis_url)
        app = create_app(s)
        app.dependency_overrides[get_settings] = lambda: s
        with serving(app, OPENAPI, schema) as served:
            app.state.token_verifier = token_verifier(s)  # after start-up, which sets the real one
            served.headers = bearer(1, s)
            # Workflow 1 exists and is the caller's: generated ids find it, not only 404s.
            r = served.http.post(served.url + "/api/v1/workflows", headers=served.headers,
                                 json={"name": "fuzzed", "definition": definition()})
            assert r.status_code == 201, r.text
            yield served


test_workflows_api, test_the_document_declares_the_error_envelope = fuzz_tests(schema)


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/workflows?offset=9223372036854775808", "offset"),  # was a 500: SQLite's integer overflowed
    ("/api/v1/workflows/9223372036854775808", "workflow_id"),  # was a 500 as well
    ("/api/v1/workflows/2147483648", "workflow_id"),  # no such id can exist (PostgreSQL `integer`)
    ("/api/v1/workflows/0/logs", "workflow_id"),
])
def test_numbers_out_of_range_are_422(api, path, field):
    r = api.http.get(api.url + path, headers=api.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == field


def test_a_body_that_is_not_utf8_is_422(api):
    # FastAPI answers a body it cannot decode with a bare 400 "There was an error parsing the body".
    r = api.http.post(api.url + "/api/v1/workflows", data=b'{"name": "\xff"}',
                      headers={**api.headers, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert r.json()["error"]["details"]["field"] == "body"
