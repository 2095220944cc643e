"""The error hierarchy and the one place that maps it to HTTP.

    AutomateOSError                      500 INTERNAL_ERROR
    ├── ValidationError                  422 VALIDATION_ERROR  (details.field points at the input)
    ├── UnauthorizedError                401 UNAUTHORIZED
    │   └── WebhookAuthError             401 UNAUTHORIZED  (a webhook trigger's `auth` refused the request)
    ├── ForbiddenError                   403 FORBIDDEN
    ├── NotFoundError                    404 NOT_FOUND
    │   └── NotOwnedError                404 NOT_FOUND     (another tenant's resource: the same answer, audited)
    ├── MethodNotAllowedError            405 METHOD_NOT_ALLOWED
    ├── ConflictError                    409 CONFLICT
    │   ├── EmailTakenError              409 EMAIL_TAKEN
    │   ├── CredentialNameTakenError     409 CREDENTIAL_NAME_TAKEN
    │   └── CredentialInUseError         409 CREDENTIAL_IN_USE  (details.workflows lists the users)
    ├── PayloadTooLargeError             413 PAYLOAD_TOO_LARGE
    ├── RateLimitedError                 429 RATE_LIMITED
    └── ServiceUnavailableError          503 SERVICE_UNAVAILABLE
        └── QueueFullError               503 QUEUE_FULL    (backpressure: the run queue is over its limit)
    NodeError                            (raised by nodes while a run executes; recorded on the step)
    ├── NodeConfigError                  the resolved config does not fit the node's schema
    └── NodeExecutionError               the node ran and failed; `kind` is what a node's `retry.on` matches

Every 4xx/5xx body is `{"error": {"code", "message", "details"?}}` (API.md, "Errors").
Starlette looks exception handlers up along the MRO, so a subclass inherits its parent's mapping.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the web stack is imported by the services that install the handlers, not by the engine
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class AutomateOSError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"
    default_message = "Internal error"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers
        super().__init__(self.message)


class ValidationError(AutomateOSError):
    status_code = 422
    code = "VALIDATION_ERROR"
    default_message = "Invalid request"

    def __init__(self, message: str | None = None, *, field: str | None = None, issue: str | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        details: dict[str, Any] = {}
        if field is not None:
            details["field"] = field
        if issue is not None:
            details["issue"] = issue
        if errors:
            details["errors"] = errors
        super().__init__(message, details=details or None)


class UnauthorizedError(AutomateOSError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Not authenticated"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class WebhookAuthError(UnauthorizedError):
    """One answer for every way a webhook's authentication fails (which check failed is only logged)."""

    default_message = "Webhook authentication failed"

    def __init__(self, *, challenge: str | None = None) -> None:
        super().__init__()
        self.headers = {"WWW-Authenticate": challenge} if challenge else None


class ForbiddenError(AutomateOSError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "Forbidden"


class NotFoundError(AutomateOSError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class NotOwnedError(NotFoundError):
    """Another tenant's resource. Answered exactly like a missing one (404, never 403), and recorded as the
    security event `access.denied`, listed to the resource's owner (not to the caller: their own list
    would otherwise tell them that the resource exists)."""

    def __init__(self, message: str | None = None, *, resource: str, resource_id: object, owner_id: int) -> None:
        super().__init__(message)
        self.resource = resource
        self.resource_id = resource_id
        self.owner_id = owner_id


class MethodNotAllowedError(AutomateOSError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"


class ConflictError(AutomateOSError):
    status_code = 409
    code = "CONFLICT"
    default_message = "Conflict"


class EmailTakenError(ConflictError):
    code = "EMAIL_TAKEN"
    default_message = "This email is already registered"


class CredentialNameTakenError(ConflictError):
    code = "CREDENTIAL_NAME_TAKEN"
    default_message = "You already have a credential with this name"


class CredentialInUseError(ConflictError):
    code = "CREDENTIAL_IN_USE"
    default_message = "Workflows use this credential"


class PayloadTooLargeError(AutomateOSError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Payload too large"


class RateLimitedError(AutomateOSError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests"


class RunFailedError(AutomateOSError):
    """A sync webhook's run ended without success (failed or cancelled): `details` name it."""

    status_code = 502
    code = "RUN_FAILED"
    default_message = "The run did not succeed"


class ServiceUnavailableError(AutomateOSError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service unavailable"


class QueueFullError(ServiceUnavailableError):
    code = "QUEUE_FULL"
    default_message = "Too much work is queued; retry later"


class NodeError(Exception):
    """A node failed while a run executed; the message is recorded on the step (no secrets in it)."""

    retryable = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


class NodeConfigError(NodeError):
    pass


# What went wrong, in the words a node's `retry.on` list uses.
ERROR_KINDS = ("timeout", "connection_error", "5xx", "429", "error")


class NodeExecutionError(NodeError):
    """A node's run failed. `kind` is what a retry policy matches (`timeout`, `connection_error`,
    `5xx`, `429`; None: another error); `retry_after` is a wait the other side asked for (seconds)."""

    def __init__(self, message: str, *, retryable: bool = False, kind: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable or kind is not None
        self.kind = kind
        self.retry_after = retry_after


# Status codes Starlette raises itself (routing, methods) mapped to our codes.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


# What FastAPI raises (a 400) when it cannot decode a request body at all.
_BODY_PARSE_ERROR = "There was an error parsing the body"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    return {"error": err}


def loc_to_field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """("body", "definition", "nodes", 1, "url") -> "definition.nodes[1].url"."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        source = parts.pop(0)
        if not parts:
            return str(source)
    return field_path(parts)


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """("nodes", 1, "query") -> "nodes[1].query": a model's own loc, no request source to strip."""
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def pydantic_errors(errors: list[Any], prefix: str = "") -> list[dict[str, str]]:
    result = []
    for e in errors:
        loc: tuple[int | str, ...] = tuple(e.get("loc", ()))
        issue = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
            # FastAPI puts the character offset of malformed JSON in the loc; it is not a list index.
            issue = f"{issue} at character {loc[1]}"
            loc = loc[:1]
        field = loc_to_field(loc)
        if prefix:
            field = f"{prefix}.{field}" if field and not field.startswith("[") else f"{prefix}{field}"
        result.append({"field": field, "issue": issue})
    return result


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or "-")


def _audit_refusal(request: Request, status: int, exc: Exception) -> None:
    """`access.denied` for another tenant's resource (404), `access.forbidden` for any 403."""
    from . import audit

    principal = getattr(request.state, "principal", None)
    caller = getattr(principal, "user_id", None)
    if isinstance(exc, NotOwnedError):
        audit.emit_for_request(request, audit.ACCESS_DENIED, user_id=exc.owner_id, resource=exc.resource,
                               resource_id=exc.resource_id, actor_user_id=caller, method=request.method)
    elif status == 403:
        audit.emit_for_request(request, audit.ACCESS_FORBIDDEN, user_id=caller, method=request.method,
                               path=request.url.path)


async def _automateos_error(request: Request, exc: Exception) -> JSONResponse:
    from fastapi.responses import JSONResponse

    assert isinstance(exc, AutomateOSError)
    # backpressure is logged as it starts and ends; a sync webhook's failed run is the workflow's, not ours
    if exc.status_code >= 500 and not isinstance(exc, QueueFullError | RunFailedError):
        log.error("%s: %s (request %s)", type(exc).__name__, exc.message, _request_id(request))
    elif isinstance(exc, NotOwnedError) or exc.status_code == 403:
        _audit_refusal(request, exc.status_code, exc)
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status_code,
                        headers=exc.headers)


async def _request_validation_error(_: Request, exc: Exception) -> JSONResponse:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    assert isinstance(exc, RequestValidationError)
    errors = pydantic_errors(list(exc.errors()))
    details: dict[str, Any] = {}
    if errors:
        details = {"field": errors[0]["field"], "issue": errors[0]["issue"], "errors": errors}
    return JSONResponse(error_body("VALIDATION_ERROR", "Invalid request", details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 403:
        _audit_refusal(request, 403, exc)
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_ERROR:
        # A body FastAPI could not read at all (JSON that is not UTF-8, a broken form) is bad input like
        # malformed JSON: 422 pointing at the body, not a bare 400.
        issue = "could not be parsed: not UTF-8 JSON, or a malformed form"
        details = {"field": "body", "issue": issue, "errors": [{"field": "body", "issue": issue}]}
        return JSONResponse(error_body("VALIDATION_ERROR", "Invalid request", details), status_code=422)
    code = _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    if exc.status_code == 404 and message == "Not Found":
        message = NotFoundError.default_message  # one wording for every 404
    return JSONResponse(error_body(code, message), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    from fastapi.responses import JSONResponse

    # Redis or the database away is an outage to retry, not a bug: 503, never a 500.
    log.warning("dependency unavailable: %s (request %s)", type(exc).__name__, _request_id(request))
    return JSONResponse(error_body("SERVICE_UNAVAILABLE", "A dependency is unavailable; retry shortly"),
                        status_code=503, headers={"Retry-After": "1"})


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    from fastapi.responses import JSONResponse

    # The traceback goes to the log, never to the client.
    log.exception("unhandled error (request %s)", _request_id(request), exc_info=exc)
    return JSONResponse(error_body("INTERNAL_ERROR", "Internal error"), status_code=500)


def install_exception_handlers(app: FastAPI, *, database: bool = False) -> None:
    """`database`: the app uses SQLAlchemy, whose OperationalError is then a 503 too. Only then is SQLAlchemy
    imported here: ~12 MB a process that has no database (the ingress, the engine's health server)."""
    from fastapi.exceptions import RequestValidationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(AutomateOSError, _automateos_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RedisConnectionError, _dependency_down)
    app.add_exception_handler(RedisTimeoutError, _dependency_down)
    if database:
        from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError

        app.add_exception_handler(SQLAlchemyOperationalError, _dependency_down)
    app.add_exception_handler(Exception, _unhandled)
