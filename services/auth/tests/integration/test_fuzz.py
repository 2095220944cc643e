"""Schemathesis on the auth API: generated requests (valid and invalid) for every operation, on real
Redis and SQLite, with a signed-in user's token. No 5xx; every answer as the OpenAPI document says."""

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
from services.auth.tests.factories import auth_settings

from automateos_auth.main import create_app
from automateos_auth.settings import get_settings

pytestmark = pytest.mark.integration

OPENAPI = "/api/v1/auth/openapi.json"
schema = load_schema(lambda: create_app(auth_settings(Path("/nonexistent"), "sqlite://", None)))


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_server) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("auth-fuzz")
    with module_redis(redis_server.url) as (redis, _):
        # Rate limits and the failed-login slowdown off: with them, after a few dozen requests every answer
        # would be a 429 or a wait of seconds (both have tests of their own: test_rate_limits.py).
        s = auth_settings(tmp, f"sqlite:///{tmp / 'auth.db'}", redis, rate_limit_enabled=False,
                          login_slowdown_max_s=0)
        app = create_app(s)
        app.dependency_overrides[get_settings] = lambda: s
        with serving(app, OPENAPI, schema) as served:
            creds = {"email": "fuzz@example.com", "password": "correct horse battery"}
            assert served.http.post(served.url + "/api/v1/auth/register", json=creds).status_code == 201
            r = served.http.post(served.url + "/api/v1/auth/token",
                                 data={"username": creds["email"], "password": creds["password"]})
            assert r.status_code == 200, r.text
            served.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            yield served


test_auth_api, test_the_document_declares_the_error_envelope = fuzz_tests(schema)


def test_a_body_that_is_not_utf8_is_422(api):
    r = api.http.post(api.url + "/api/v1/auth/register", data=b'{"email": "\xff@example.com"}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "body"
