"""Schemathesis on the engine's HTTP face (health only), on real Redis: every answer as its OpenAPI
document says."""

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

from automateos_engine import settings as engine_settings
from automateos_engine.health import create_app

pytestmark = pytest.mark.integration

OPENAPI = "/api/v1/engine/openapi.json"
schema = load_schema(create_app)


@pytest.fixture(scope="module")
def api(redis_server) -> Iterator[Served]:
    with module_redis(redis_server.url) as (_, redis_url), pytest.MonkeyPatch.context() as mp:
        mp.setenv("REDIS_URL", redis_url)
        engine_settings.get_settings.cache_clear()
        try:
            with serving(create_app(worker_status=lambda: (2, 2)), OPENAPI, schema) as served:
                yield served
        finally:
            engine_settings.get_settings.cache_clear()


def _gets_answer_200(case, response):
    if case.method == "GET":  # the coverage phase tries other methods too (405)
        assert response.status_code == 200, response.text


test_engine_api, test_the_document_declares_the_error_envelope = fuzz_tests(schema, _gets_answer_200)
