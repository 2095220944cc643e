"""`/api/v1/credentials`: the caller's named credentials. Values are write-only: no answer carries them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from automateos_common import audit
from automateos_common.auth import CurrentPrincipal
from automateos_common.openapi import error_responses
from automateos_common.params import CredentialId

from ... import credentials as crud
from ...models import Credential, Workflow
from ...schemas import CredentialCreate, CredentialPublic, CredentialsPublic, CredentialUpdate
from ..deps import PageDep, PublisherDep, SecretStoreDep, SessionDep

router = APIRouter(prefix="/api/v1/credentials", tags=["credentials"])
Force = Annotated[bool, Query(description="Go ahead although workflows use the credential.")]
STORE_DOWN = {503: "The secret store (AWS Secrets Manager with the `aws` store) is unreachable or refused; retry "
                   "shortly (`SERVICE_UNAVAILABLE`)"}
NOT_FOUND = {404: "No such credential of the caller's (someone else's is 404 too)"}
IN_USE = {409: "The name is taken (`CREDENTIAL_NAME_TAKEN`), or workflows use the credential "
               "(`CREDENTIAL_IN_USE`, listed in `details.workflows`; `?force=true` goes ahead)"}


def _users(session: SessionDep, cred: Credential) -> list[int]:
    assert cred.id is not None
    return [u.id for u in crud.used_by(session=session, owner_id=cred.owner_id, creds=[cred])[cred.id]]


def _republish(session: SessionDep, publisher: PublisherDep, workflow_ids: list[int]) -> None:
    """Announce the workflows using a changed credential: an ingress holding its old value for a webhook's
    `auth` forgets it with the hook entry, so the new value (or its absence) applies at once."""
    for wf_id in workflow_ids:
        wf = session.get(Workflow, wf_id)
        if wf is not None:
            publisher.publish(wf)


def _public(session: SessionDep, owner_id: int, cred: Credential) -> CredentialPublic:
    assert cred.id is not None
    return crud.to_public(cred, crud.used_by(session=session, owner_id=owner_id, creds=[cred])[cred.id])


@router.post("", status_code=201, response_model=CredentialPublic,
             responses=error_responses(409, 503, descriptions={409: "The name is taken (`CREDENTIAL_NAME_TAKEN`)",
                                                          **STORE_DOWN}))
def create_credential(body: CredentialCreate, request: Request, user: CurrentPrincipal, session: SessionDep,
                      store: SecretStoreDep, publisher: PublisherDep) -> CredentialPublic:
    cred = crud.create(session=session, owner_id=user.user_id, data=body, store=store)
    session.commit()
    _republish(session, publisher, _users(session, cred))  # workflows naming it, saved while it was deleted
    audit.emit_for_request(request, audit.CREDENTIAL_CREATED, user_id=user.user_id, credential_id=cred.id,
                           name=cred.name, type=cred.type)
    return _public(session, user.user_id, cred)


@router.get("", response_model=CredentialsPublic)
def list_credentials(user: CurrentPrincipal, session: SessionDep, page: PageDep) -> CredentialsPublic:
    items, total = crud.list_page(session=session, owner_id=user.user_id, limit=page.limit, offset=page.offset)
    users = crud.used_by(session=session, owner_id=user.user_id, creds=items)
    return CredentialsPublic(items=[crud.to_public(c, users[c.id]) for c in items if c.id is not None], total=total)


@router.get("/{credential_id}", response_model=CredentialPublic, responses=error_responses(404, descriptions=NOT_FOUND))
def get_credential(credential_id: CredentialId, user: CurrentPrincipal, session: SessionDep) -> CredentialPublic:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    return _public(session, user.user_id, cred)


@router.put("/{credential_id}", response_model=CredentialPublic,
            responses=error_responses(404, 409, 503, descriptions={**NOT_FOUND, **IN_USE, **STORE_DOWN}))
@router.patch("/{credential_id}", response_model=CredentialPublic,
              responses=error_responses(404, 409, 503, descriptions={**NOT_FOUND, **IN_USE, **STORE_DOWN}))
def update_credential(credential_id: CredentialId, body: CredentialUpdate, request: Request, user: CurrentPrincipal,
                      session: SessionDep, store: SecretStoreDep, publisher: PublisherDep,
                      force: Force = False) -> CredentialPublic:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    users_before = _users(session, cred)  # by the old name too: a forced rename leaves them without it
    cred = crud.update(session=session, cred=cred, data=body, store=store, force=force)
    session.commit()
    _republish(session, publisher, sorted({*users_before, *_users(session, cred)}))
    audit.emit_for_request(request, audit.CREDENTIAL_UPDATED, user_id=user.user_id, credential_id=cred.id,
                           name=cred.name, value_changed=body.data is not None)
    return _public(session, user.user_id, cred)


@router.delete("/{credential_id}", status_code=204,
               responses=error_responses(404, 409, 503, descriptions={**NOT_FOUND, **IN_USE, **STORE_DOWN}))
def delete_credential(credential_id: CredentialId, request: Request, user: CurrentPrincipal, session: SessionDep,
                      store: SecretStoreDep, publisher: PublisherDep, force: Force = False) -> Response:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    name = cred.name
    users = _users(session, cred)
    crud.delete(session=session, cred=cred, store=store, force=force)
    session.commit()
    _republish(session, publisher, users)
    audit.emit_for_request(request, audit.CREDENTIAL_DELETED, user_id=user.user_id, credential_id=credential_id,
                           name=name, forced=force)
    return Response(status_code=204)
