"""Service-to-service routes (never routed by the gateway; guarded by the internal secret)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from sqlmodel import select

from automateos_common import audit
from automateos_common.credentials import parse_ref
from automateos_common.errors import NotFoundError, ServiceUnavailableError
from automateos_common.internal import InternalOnly
from automateos_common.nodes.registry import default_registry
from automateos_common.secretstore import SecretRef, SecretStoreError

from ... import credentials, crud
from ...models import Workflow
from ...publisher import webhook_spec
from ..deps import PublisherDep, SecretStoreDep, SessionDep

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
    spec = webhook_spec(wf.definition, default_registry()) if wf is not None else None
    if wf is None or not wf.is_active or spec is None:
        raise NotFoundError()
    publisher.publish(wf)
    return {"workflow_id": wf.id, "owner_id": wf.owner_id, "method": spec[0], "options": spec[1]}


@router.get("/hooks/{token}/auth")
def hook_auth_for_ingress(token: str, _: InternalOnly, session: SessionDep, store: SecretStoreDep) -> dict[str, Any]:
    """The opened credential a webhook's `auth` names, for the ingress to check requests with.

    Only this one: the credential of the active workflow behind `token` whose webhook trigger names it
    (so this route opens nothing but webhook verification secrets, and only for a caller that knows both
    the internal secret and the hook's token). 404: no such workflow, no `auth`, or no such credential."""
    wf = session.exec(select(Workflow).where(Workflow.webhook_token == token)).first()
    spec = webhook_spec(wf.definition, default_registry()) if wf is not None and wf.is_active else None
    auth = spec[1].get("auth") if spec is not None else None
    if wf is None or not isinstance(auth, dict) or auth.get("credential") is None:
        raise NotFoundError()
    cred = credentials.find(session=session, owner_id=wf.owner_id, ref=parse_ref(auth["credential"]))
    if cred is None or cred.id is None:
        raise NotFoundError()
    try:
        secret = orjson.loads(store.get(SecretRef(cred.owner_id, cred.id, cred.secret_ref)))
    except SecretStoreError as exc:  # names the key id at most, never the value
        raise ServiceUnavailableError(f"The credential cannot be opened: {exc}", headers={"Retry-After": "5"}) from None
    audit.emit(audit.CREDENTIAL_READ, user_id=cred.owner_id, credential_id=cred.id, name=cred.name,
               reader="ingress", workflow_id=wf.id)
    return {"id": cred.id, "type": cred.type, "version": cred.version, "fields": {**cred.public, **secret}}


@router.get("/credentials/{owner_id}/{ref}")
def credential_for_engine(owner_id: int, ref: str, _: InternalOnly, session: SessionDep) -> dict[str, Any]:
    """The owner's credential by id or name, its value still sealed: the engine opens it while the step runs."""
    cred = credentials.find(session=session, owner_id=owner_id, ref=parse_ref(ref))
    if cred is None:
        raise NotFoundError()
    return {"id": cred.id, "owner_id": cred.owner_id, "name": cred.name, "type": cred.type, "public": cred.public,
            "secret_ref": cred.secret_ref, "version": cred.version}
