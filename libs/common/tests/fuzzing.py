"""Schemathesis against a service's own OpenAPI document (imported as `libs.common.tests.fuzzing`).

Each service's `tests/integration/test_fuzz.py` builds its app, serves it in this process (uvicorn in a
thread, on real Redis and SQLite) and runs every documented operation with generated requests, valid
and invalid: no 5xx, and every status code, content type and body must be one the document declares
for that operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from services.workflows.tests.factories import ThreadedServer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Bounded and reproducible: the same requests on every run (derandomize, no example database). Besides
# these, schemathesis's coverage phase sends each operation's boundary and invalid cases (a few dozen).
fuzz_settings = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def load_schema(build_app: Callable[[], FastAPI]) -> Any:
    """The OpenAPI document of an app built only to describe itself: nothing is started at collection
    time. `serving` checks that the running app serves this same document."""
    return schemathesis.openapi.from_dict(build_app().openapi())


@dataclass
class Served:
    url: str
    http: requests.Session
    headers: dict[str, str]  # sent with every case: a valid Bearer token where the service takes one

    def call_and_validate(self, case: Any) -> Any:
        # No check is excluded for any operation.
        response = case.call_and_validate(base_url=self.url, session=self.http, headers=self.headers,
                                          checks=CHECKS)
        if "Authorization" in self.headers and case.operation.definition.raw.get("security"):
            # Every case carries a valid token: a 401 would mean the fuzzing only ever reached the token check.
            assert response.status_code != 401, response.text
        return response


@contextmanager
def serving(app: FastAPI, openapi_path: str, schema: Any) -> Iterator[Served]:
    """The app served in this process (its lifespan runs once, for a whole module of operations)."""
    with ThreadedServer(app) as server, requests.Session() as http:
        http.trust_env = False  # never through a proxy from the environment
        served = http.get(server.url + openapi_path, timeout=10)
        assert served.status_code == 200, served.text
        assert served.json() == schema.raw_schema, "the app serves another document than the cases come from"
        yield Served(url=server.url, http=http, headers={})


@contextmanager
def module_redis(redis_url: str) -> Iterator[tuple[Redis, str]]:
    """The Redis database `redis_client` uses, for a whole module, flushed before and after."""
    url = redis_url.rsplit("/", 1)[0] + "/15"
    client = Redis.from_url(url)
    client.flushdb()
    try:
        yield client, url
    finally:
        client.flushdb()
        client.close()


def assert_errors_documented(doc: dict[str, Any]) -> None:
    """Every operation documents its errors with the envelope, never FastAPI's `{"detail"}`; ids are unique."""
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), ids
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            errors = {code: r for code, r in op["responses"].items() if code >= "400"}
            assert {"500", "503"} <= set(errors), (method, path)
            if op.get("security"):
                assert "401" in errors, (method, path)
            for code, r in errors.items():
                assert r["content"]["application/json"]["schema"] == envelope, (method, path, code)


def fuzz_tests(schema: Any, check: Callable[[Any, Any], None] | None = None) -> tuple[Any, Any]:
    """A service's two schemathesis tests, for its module to bind to `test_...` names: every operation
    fuzzed against the served app (the module's `api` fixture), `check(case, response)` after each;
    and the document declaring its errors with the envelope."""

    @schema.parametrize()
    @fuzz_settings
    def test_api(case: Any, api: Served) -> None:
        response = api.call_and_validate(case)
        if check is not None:
            check(case, response)

    def test_the_document_declares_the_error_envelope() -> None:
        assert_errors_documented(schema.raw_schema)

    return test_api, test_the_document_declares_the_error_envelope
