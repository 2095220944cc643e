"""install_exception_handlers: every error leaves as {"error": {"code", "message", "details"?}}."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy.exc
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from automateos_common.errors import (
    AutomateOSError,
    ConflictError,
    EmailTakenError,
    ForbiddenError,
    NodeConfigError,
    NodeError,
    NodeExecutionError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationError,
    error_body,
    field_path,
    install_exception_handlers,
    loc_to_field,
    pydantic_errors,
)

SECRET = "postgres://admin:hunter2@db/prod"


class WorkflowNotFound(NotFoundError):
    """A subclass the handlers were never told about: it inherits its parent's mapping."""

    default_message = "Workflow not found"


class Node(BaseModel):
    id: str
    url: str


class Definition(BaseModel):
    nodes: list[Node]


class WorkflowIn(BaseModel):
    name: str
    definition: Definition


RAISED: dict[str, AutomateOSError] = {
    "base": AutomateOSError(),
    "validation": ValidationError("Invalid workflow definition", field="definition.nodes[1].config.url",
                                  issue="not a URL"),
    "unauthorized": UnauthorizedError(),
    "forbidden": ForbiddenError(),
    "not-found": NotFoundError(),
    "conflict": ConflictError(),
    "email-taken": EmailTakenError(),
    "too-large": PayloadTooLargeError("Body larger than 1 MiB"),
    "rate-limited": RateLimitedError(headers={"Retry-After": "30"}),
    "unavailable": ServiceUnavailableError("Redis is down"),
    "subclass": WorkflowNotFound(),
}


def build_app() -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app, database=True)

    @app.get("/raise/{name}")
    def raise_(name: str) -> None:
        raise RAISED[name]

    @app.post("/workflows")
    def create(body: WorkflowIn) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/items")
    def items(limit: int = 50) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/http/{status}")
    def http_error(status: int, dict_detail: bool = False) -> None:
        raise HTTPException(status, detail={"x": 1} if dict_detail else "Told you so")

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError(f"could not connect to {SECRET}")

    @app.get("/redis-down")
    def redis_down() -> None:
        raise redis.exceptions.ConnectionError(f"Error 111 connecting to {SECRET}")

    @app.get("/db-down")
    def db_down() -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(SECRET))

    return app


APP = build_app()


def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        # raise_app_exceptions=False: answer like a server would, instead of re-raising a crash here.
        transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("name", "status", "body"),
    [
        ("base", 500, {"code": "INTERNAL_ERROR", "message": "Internal error"}),
        ("validation", 422, {"code": "VALIDATION_ERROR", "message": "Invalid workflow definition",
                             "details": {"field": "definition.nodes[1].config.url", "issue": "not a URL"}}),
        ("unauthorized", 401, {"code": "UNAUTHORIZED", "message": "Not authenticated"}),
        ("forbidden", 403, {"code": "FORBIDDEN", "message": "Forbidden"}),
        ("not-found", 404, {"code": "NOT_FOUND", "message": "Not found"}),
        ("conflict", 409, {"code": "CONFLICT", "message": "Conflict"}),
        ("email-taken", 409, {"code": "EMAIL_TAKEN", "message": "This email is already registered"}),
        ("too-large", 413, {"code": "PAYLOAD_TOO_LARGE", "message": "Body larger than 1 MiB"}),
        ("rate-limited", 429, {"code": "RATE_LIMITED", "message": "Too many requests"}),
        ("unavailable", 503, {"code": "SERVICE_UNAVAILABLE", "message": "Redis is down"}),
        ("subclass", 404, {"code": "NOT_FOUND", "message": "Workflow not found"}),
    ],
)
def test_each_error_maps_to_its_status_and_envelope(name: str, status: int, body: dict[str, Any]) -> None:
    resp = call("GET", f"/raise/{name}")
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": body}


def test_unauthorized_asks_for_a_bearer_token() -> None:
    assert call("GET", "/raise/unauthorized").headers["www-authenticate"] == "Bearer"


def test_error_headers_are_sent() -> None:
    assert call("GET", "/raise/rate-limited").headers["retry-after"] == "30"


def test_request_validation_points_at_the_field() -> None:
    resp = call("POST", "/workflows", json={"name": "w", "definition": {"nodes": [
        {"id": "a", "url": "https://x.test"}, {"id": "b"},
    ]}})
    assert resp.status_code == 422
    assert resp.json() == {"error": {
        "code": "VALIDATION_ERROR", "message": "Invalid request",
        "details": {"field": "definition.nodes[1].url", "issue": "Field required",
                    "errors": [{"field": "definition.nodes[1].url", "issue": "Field required"}]},
    }}


def test_every_request_validation_error_is_listed() -> None:
    resp = call("POST", "/workflows", json={"definition": {"nodes": "none"}})
    assert resp.json()["error"]["details"] == {
        "field": "name", "issue": "Field required",
        "errors": [{"field": "name", "issue": "Field required"},
                   {"field": "definition.nodes", "issue": "Input should be a valid list"}],
    }


def test_query_parameter_validation() -> None:
    resp = call("GET", "/items", params={"limit": "many"})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["field"] == "limit"
    assert call("GET", "/items", params={"limit": "5"}).json() == {"limit": 5}


def test_a_missing_body() -> None:
    resp = call("POST", "/workflows")
    assert resp.status_code == 422
    assert resp.json()["error"]["details"] == {
        "field": "body", "issue": "Field required", "errors": [{"field": "body", "issue": "Field required"}],
    }


def test_malformed_json_points_at_the_body_not_at_a_list_index() -> None:
    resp = call("POST", "/workflows", content=b'{"name": "w",,}', headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"] == {
        "field": "body", "issue": "JSON decode error at character 13",
        "errors": [{"field": "body", "issue": "JSON decode error at character 13"}],
    }


def test_unknown_route() -> None:
    resp = call("GET", "/nowhere")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "NOT_FOUND", "message": "Not found"}}


def test_wrong_method() -> None:
    resp = call("DELETE", "/items")
    assert resp.status_code == 405
    assert resp.json() == {"error": {"code": "METHOD_NOT_ALLOWED", "message": "Method Not Allowed"}}
    assert resp.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "BAD_REQUEST"), (403, "FORBIDDEN"), (404, "NOT_FOUND"), (409, "CONFLICT"), (413, "PAYLOAD_TOO_LARGE"),
     (415, "UNSUPPORTED_MEDIA_TYPE"), (429, "RATE_LIMITED"), (418, "BAD_REQUEST"), (503, "SERVICE_UNAVAILABLE"),
     (502, "INTERNAL_ERROR")],
)
def test_http_exceptions(status: int, code: str) -> None:
    resp = call("GET", f"/http/{status}")
    assert resp.status_code == status
    assert resp.json() == {"error": {"code": code, "message": "Told you so"}}


def test_an_http_exception_with_structured_detail_gets_a_plain_message() -> None:
    resp = call("GET", "/http/409", params={"dict_detail": "true"})
    assert resp.json() == {"error": {"code": "CONFLICT", "message": "Conflict"}}


def test_an_unexpected_exception_reveals_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="automateos_common.errors"):
        resp = call("GET", "/crash")
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "INTERNAL_ERROR", "message": "Internal error"}}
    assert "hunter2" not in resp.text
    assert "Traceback" not in resp.text
    # The details are in the log instead.
    [record] = [r for r in caplog.records if r.name == "automateos_common.errors"]
    assert record.getMessage() == "unhandled error (request -)"  # no request id outside the app factory
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == f"could not connect to {SECRET}"


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (("body", "definition", "nodes", 1, "url"), "definition.nodes[1].url"),
        (["body", "definition", "nodes", 1, "url"], "definition.nodes[1].url"),
        (("query", "limit"), "limit"),
        (("path", "workflow_id"), "workflow_id"),
        (("header", "x-token"), "x-token"),
        (("body",), "body"),
        (("nodes", 0, "config", "headers", "X-A"), "nodes[0].config.headers.X-A"),
        (("matrix", 1, 2), "matrix[1][2]"),
        ((0, "id"), "[0].id"),
        ((), ""),
    ],
)
def test_loc_to_field(loc: Any, field: str) -> None:
    assert loc_to_field(loc) == field


def test_field_path_strips_nothing() -> None:
    assert field_path(("query", "page", 0)) == "query.page[0]"
    assert loc_to_field(("query", "page", 0)) == "page[0]"


def test_pydantic_errors_with_a_prefix() -> None:
    errors = [{"loc": ("nodes", 1, "url"), "msg": "bad"}, {"loc": (0,), "msg": "worse"}, {"loc": (), "msg": "all"}]
    assert pydantic_errors(errors, prefix="definition") == [
        {"field": "definition.nodes[1].url", "issue": "bad"},
        {"field": "definition[0]", "issue": "worse"},
        {"field": "definition", "issue": "all"},
    ]


def test_error_body_leaves_out_empty_details() -> None:
    assert error_body("NOT_FOUND", "Not found") == {"error": {"code": "NOT_FOUND", "message": "Not found"}}
    assert error_body("NOT_FOUND", "Not found", {}) == {"error": {"code": "NOT_FOUND", "message": "Not found"}}


def test_validation_error_details() -> None:
    assert ValidationError().details is None
    assert ValidationError(field="email").details == {"field": "email"}
    errors = [{"field": "a", "issue": "x"}]
    assert ValidationError("Bad", field="a", issue="x", errors=errors).details == {
        "field": "a", "issue": "x", "errors": errors,
    }


def test_node_errors() -> None:
    assert NodeExecutionError("boom").retryable is False
    assert NodeExecutionError("boom", retryable=True).retryable is True
    config_error = NodeConfigError("bad url", field="url")
    assert (config_error.message, config_error.field, config_error.retryable) == ("bad url", "url", False)
    assert isinstance(config_error, NodeError)
    assert not isinstance(config_error, AutomateOSError)


@pytest.mark.parametrize("path", ["/redis-down", "/db-down"])
def test_a_dependency_outage_is_a_503_to_retry_not_a_500(path: str) -> None:
    resp = call("GET", path)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    message = "A dependency is unavailable; retry shortly"
    assert resp.json() == {"error": {"code": "SERVICE_UNAVAILABLE", "message": message}}
    assert SECRET not in resp.text
