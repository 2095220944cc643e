from __future__ import annotations

from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from automateos_common.auth import CurrentPrincipal
from automateos_common.errors import ValidationError
from automateos_common.openapi import error_responses
from automateos_common.params import WorkflowId
from automateos_common.requestctx import client_ip

from ...accept import Acceptor
from ...payloads import HookRequest, read_body, trigger_data, until_disconnected
from ...settings import get_settings

router = APIRouter(tags=["triggers"])

ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"description": "Accepted: the run is queued",
                  "content": {"application/json": {"example": {"execution_id": "…", "status": "queued"}}}}}
QUEUE_FULL = ("Too much work queued (`QUEUE_FULL`, over `AUTOMATEOS_QUEUE_MAX_DEPTH`), or a dependency is "
              "unavailable (`SERVICE_UNAVAILABLE`: Redis, or the workflows service holding the trigger's "
              "credential); with `Retry-After`")
DUPLICATE: dict[int | str, dict[str, Any]] = {200: {
    "description": "A duplicate delivery (same `Idempotency-Key`, or the trigger's dedup header, within its "
                   "window): nothing started; the first delivery's execution and its current status",
    "content": {"application/json": {"example": {"execution_id": "…", "status": "running", "duplicate": True}}}}}
SYNC_ANSWERED: dict[int | str, dict[str, Any]] = {"2XX": {
    "description": "A `sync` webhook's run succeeded: the chosen node's output as JSON, with the trigger's "
                   "`response.status_code` (200 by default)",
    "content": {"application/json": {"schema": {}}}}}
WEBHOOK_RESPONSES = {**ACCEPTED, **DUPLICATE, **SYNC_ANSWERED,
                     **error_responses(401, 404, 405, 413, 429, 502, 503, descriptions={
    401: "The trigger's `auth` refused the request (`UNAUTHORIZED`; one answer for every failure); nothing started",
    404: "Unknown, deleted or inactive workflow",
    405: "The workflow's webhook answers to another method (`Allow` names it)",
    413: "Body larger than `AUTOMATEOS_MAX_BODY_BYTES`",
    429: "Over the workflow's `rate_limit` or `AUTOMATEOS_WEBHOOK_IP_RATE_LIMIT` (`RATE_LIMITED`; with "
         "`Retry-After` and `RateLimit-*`)",
    502: "A `sync` webhook's run failed or was cancelled (`RUN_FAILED`; `details`: execution_id, status)",
    503: QUEUE_FULL,
})}
EXECUTE_RESPONSES = {**ACCEPTED, **error_responses(404, 413, 503, descriptions={
    404: "No such workflow of the caller's (someone else's is 404 too)",
    413: "Body larger than `AUTOMATEOS_MAX_BODY_BYTES`",
    503: QUEUE_FULL,
})}
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _accepted(execution_id: str) -> JSONResponse:
    return JSONResponse({"execution_id": execution_id, "status": "queued"}, status_code=202,
                        headers={"Location": f"/api/v1/logs/{execution_id}"})


async def webhook(token: str, request: Request) -> Response:
    """Start the workflow behind this webhook URL, with the method its webhook node names (POST by default).

    Any body up to 1 MiB; no JWT (the token is the secret). Another method: 405 with `Allow`.
    """
    body = await read_body(request.stream(), request.headers.get("content-length"), get_settings().max_body_bytes)
    hook = HookRequest(method=request.method, headers=request.headers.items(),
                       query=request.query_params.multi_items(), body=body,
                       client=client_ip(request.scope, get_settings().client_ip_header),
                       gone=lambda: until_disconnected(request.receive))
    acceptor: Acceptor = request.app.state.acceptor
    reply = await acceptor.webhook_async(token, hook)
    return Response(reply.body, status_code=reply.status, media_type="application/json",
                    headers={k.decode("latin-1"): v.decode("latin-1") for k, v in reply.headers})


# One route per method: each is its own operation in the OpenAPI document, with an id of its own.
for _method in WEBHOOK_METHODS:
    router.add_api_route("/hooks/{token}", webhook, methods=[_method], status_code=202, responses=WEBHOOK_RESPONSES,
                         operation_id=f"webhook_{_method.lower()}", summary=f"Webhook ({_method})")


@router.post("/api/v1/workflows/{workflow_id}/execute", status_code=202, responses=EXECUTE_RESPONSES)
async def execute(workflow_id: WorkflowId, request: Request, user: CurrentPrincipal) -> JSONResponse:
    """Run the workflow now (the owner only); the JSON body becomes `trigger.payload`."""
    body = await read_body(request.stream(), request.headers.get("content-length"), get_settings().max_body_bytes)
    try:
        payload = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise ValidationError("Body must be JSON", field="body", issue="not valid JSON") from None
    data = trigger_data(payload=payload, headers=request.headers.items(), query=request.query_params.multi_items(),
                        method=request.method)
    acceptor: Acceptor = request.app.state.acceptor
    run = await anyio.to_thread.run_sync(acceptor.manual, workflow_id, user.user_id, data)
    return _accepted(run.id)
