"""The error envelope in every service's OpenAPI document.

Routes declare the errors they answer with `error_responses(404, 409, ...)`. `install_error_docs(app)`
(called by `create_service_app`) completes each operation with what applies to all of them, so that a
client generated from the document, and the schemathesis tests, see every status code a route can give
and the body it comes with:
- 422 for any operation with parameters or a body: FastAPI documents its own `{"detail": [...]}` there,
  which this API never sends; it becomes the envelope;
- 401 for an operation that takes a Bearer token;
- 500 and 503 (Redis or the database down) everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

REF_PREFIX = "#/components/schemas/"


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code: `VALIDATION_ERROR`, `NOT_FOUND`, ...",
                      examples=["VALIDATION_ERROR"])
    message: str = Field(description="Human-readable; never a secret or a stack trace.", examples=["Invalid request"])
    details: dict[str, Any] | None = Field(
        default=None, description="What is wrong, when there is more to say: `field` (a path into the request), "
                                  "`issue`, `errors` (every problem found), or codes' own keys.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body of every service (API.md, "Errors"). Some answers add keys beside `error`
    (a failing health check adds its checks)."""

    model_config = ConfigDict(title="ErrorResponse")

    error: ErrorInfo


DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (`BAD_REQUEST`)",
    401: "Missing, invalid or expired token (`UNAUTHORIZED`; with `WWW-Authenticate: Bearer`)",
    403: "Forbidden (`FORBIDDEN`)",
    404: "Not found, or someone else's (`NOT_FOUND`)",
    405: "Method not allowed (`METHOD_NOT_ALLOWED`; with `Allow`)",
    409: "Conflict (`CONFLICT`)",
    413: "Body too large (`PAYLOAD_TOO_LARGE`)",
    422: "Invalid request: `details.field` points at the input (`VALIDATION_ERROR`)",
    429: "Too many requests (`RATE_LIMITED`; with `Retry-After`)",
    500: "Unexpected error (`INTERNAL_ERROR`): no details, no stack trace",
    503: "A dependency is unavailable; retry shortly (`SERVICE_UNAVAILABLE`; with `Retry-After`)",
}


def error_responses(*statuses: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the envelope as its body, described (`descriptions`
    overrides the generic wording)."""
    described = {**DESCRIPTIONS, **(descriptions or {})}
    return {status: {"model": ErrorResponse, "description": described.get(status, "Error")} for status in statuses}


def _envelope(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "ErrorResponse"}}}}


def complete_error_docs(doc: dict[str, Any]) -> dict[str, Any]:
    """Give every operation of an OpenAPI document the errors every route can answer with (in place;
    applying it twice changes nothing)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in schemas:
        # The models with the refs pydantic generates, ours pointing at our own components.
        generated = ErrorResponse.model_json_schema(ref_template=REF_PREFIX + "{model}")
        schemas.update(generated.pop("$defs", {}))
        schemas["ErrorResponse"] = generated
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            if "422" in responses and _is_fastapi_validation_error(responses["422"]):
                responses["422"] = _envelope(422)
            if operation.get("security"):
                responses.setdefault("401", _envelope(401))
            responses.setdefault("500", _envelope(500))
            responses.setdefault("503", _envelope(503))
    # FastAPI's own validation error shape is referenced nowhere now.
    if "HTTPValidationError" in schemas and _FASTAPI_422 not in json.dumps(doc.get("paths", {})):
        del schemas["HTTPValidationError"]
        schemas.pop("ValidationError", None)
    return doc


_FASTAPI_422 = REF_PREFIX + "HTTPValidationError"


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    return _FASTAPI_422 in json.dumps(response)


def install_error_docs(app: FastAPI) -> None:
    """The app's OpenAPI document, completed by `complete_error_docs` (FastAPI caches it once built)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return complete_error_docs(build())

    app.openapi = openapi  # type: ignore[method-assign]
