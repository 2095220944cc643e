"""Schemathesis on the ingress API: generated requests (valid and invalid) for every operation, on real
Redis, with a catalog holding a webhook per method and a workflow of the signed-in user. No 5xx; every
answer as the OpenAPI document says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from libs.common.tests.fuzzing import (
    Served,
    fuzz_tests,
    load_schema,
    module_redis,
    serving,
)
from services.workflows.tests.factories import bearer, token_verifier

from automateos_common import catalog
from automateos_ingress.main import create_app
from automateos_ingress.settings import IngressSettings, get_settings

pytestmark = pytest.mark.integration

OPENAPI = "/api/v1/ingress/openapi.json"
schema = load_schema(lambda: create_app(IngressSettings(data_dir="/nonexistent")))
USER = 7


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_server) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ingress-fuzz")
    with module_redis(redis_server.url) as (redis, redis_url), pytest.MonkeyPatch.context() as mp:
        # The routes read the settings themselves (get_settings), so they come from the environment.
        for k, v in {"REDIS_URL": redis_url, "AUTOMATEOS_DATA_DIR": str(tmp), "AUTOMATEOS_MAX_BODY_BYTES": "4096",
                     "AUTOMATEOS_QUEUE_NAME": "ingress-fuzz", "AUTOMATEOS_WORKFLOWS_URL": "http://127.0.0.1:9",
                     "AUTOMATEOS_AUTH_URL": "http://127.0.0.1:9"}.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        with redis.pipeline() as pipe:
            # Workflow 1 (POST webhook) ... 5 (DELETE) are the user's: generated ids and methods find them.
            for wf, method in enumerate(("POST", "GET", "PUT", "PATCH", "DELETE"), start=1):
                catalog.publish(pipe, catalog.CatalogEntry(
                    workflow_id=wf, owner_id=USER, is_active=True, version=1, definition={},
                    webhook_token=f"token-{method.lower()}", webhook_method=method))
            pipe.set(catalog.READY_KEY, "1")  # the catalog is whole: no fallback to the workflows service
            pipe.execute()
        settings = get_settings()
        app = create_app(settings)
        try:
            with serving(app, OPENAPI, schema) as served:
                app.state.token_verifier = token_verifier(settings)
                served.headers = bearer(USER, settings)
                yield served
        finally:
            get_settings.cache_clear()


test_ingress_api, test_the_document_declares_the_error_envelope = fuzz_tests(schema)


def test_a_workflow_id_out_of_range_is_422(api):
    r = api.http.post(api.url + "/api/v1/workflows/2147483648/execute", headers=api.headers, json={})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "workflow_id"


def test_the_users_workflow_is_accepted(api):
    r = api.http.post(api.url + "/api/v1/workflows/1/execute", headers=api.headers, json={"n": 1})
    assert r.status_code == 202, r.text
