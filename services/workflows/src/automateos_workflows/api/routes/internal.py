"""Service-to-service routes (never routed by the gateway; guarded by the internal secret)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlmodel import select

from automateos_common.errors import NotFoundError
from automateos_common.internal import InternalOnly
from automateos_common.nodes.registry import default_registry

from ... import crud
from ...models import Workflow
from ...publisher import webhook_method
from ..deps import PublisherDep, SessionDep

router = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)


@router.get("/workflows/{workflow_id}")
def workflow_for_engine(workflow_id: int, _: InternalOnly, session: SessionDep,
                        publisher: PublisherDep) -> dict[str, Any]:
    wf = session.get(Workflow, workflow_id)
    if wf is None:
        raise NotFoundError()
    publisher.publish(wf)  # we were asked because Redis did not have it
    return crud.catalog_fields(wf)


@router.get("/hooks/{token}")
def hook_for_ingress(token: str, _: InternalOnly, session: SessionDep, publisher: PublisherDep) -> dict[str, Any]:
    wf = session.exec(select(Workflow).where(Workflow.webhook_token == token)).first()
    method = webhook_method(wf.definition, default_registry()) if wf is not None else None
    if wf is None or not wf.is_active or method is None:
        raise NotFoundError()
    publisher.publish(wf)
    return {"workflow_id": wf.id, "owner_id": wf.owner_id, "method": method}
