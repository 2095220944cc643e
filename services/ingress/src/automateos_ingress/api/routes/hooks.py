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

from ...accept import Acceptor
from ...payloads import HookRequest, read_body, trigger_data, until_disconnected
from ...settings import get_settings

router = APIRouter(tags=["triggers"])

ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"description": "Accepted: the run is queued",
                  "content": {"application/json": {"example": {"execution_id": "…", "status": "queued"}}}}}
SYNC_ANSWERED: dict[int | str, dict[str, Any]] = {"2XX": {
    "description": "A `sync` webhook's run succeeded: the chosen node's output as JSON, with the trigger's "
                   "`response.status_code` (200 by default)",
    "content": {"application/json": {"schema": {}}}}}
WEBHOOK_RESPONSES = {**ACCEPTED, **SYNC_ANSWERED, **error_responses(404, 405, 413, 502, descriptions={
    404: "Unknown, deleted or inactive workflow",
    405: "The workflow's webhook answers to another method (`Allow` names it)",
    413: "Body larger than `AUTOMATEOS_MAX_BODY_BYTES`",
    502: "A `sync` webhook's run failed or was cancelled (`RUN_FAILED`; `details`: execution_id, status)",
})}
EXECUTE_RESPONSES = {**ACCEPTED, **error_responses(404, 413, descriptions={
    404: "No such workflow of the caller's (someone else's is 404 too)",
    413: "Body larger than `AUTOMATEOS_MAX_BODY_BYTES`",
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
                       client=request.client.host if request.client else None,
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
