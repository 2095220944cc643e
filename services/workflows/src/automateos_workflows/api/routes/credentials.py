"""`/api/v1/credentials`: the caller's named credentials. Values are write-only: no answer carries them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from automateos_common.auth import CurrentPrincipal

from ... import credentials as crud
from ...models import Credential
from ...schemas import CredentialCreate, CredentialPublic, CredentialsPublic, CredentialUpdate
from ..deps import PageDep, SecretStoreDep, SessionDep

router = APIRouter(prefix="/api/v1/credentials", tags=["credentials"])
Force = Annotated[bool, Query(description="Go ahead although workflows use the credential.")]


def _public(session: SessionDep, owner_id: int, cred: Credential) -> CredentialPublic:
    assert cred.id is not None
    return crud.to_public(cred, crud.used_by(session=session, owner_id=owner_id, creds=[cred])[cred.id])


@router.post("", status_code=201, response_model=CredentialPublic)
def create_credential(body: CredentialCreate, user: CurrentPrincipal, session: SessionDep,
                      store: SecretStoreDep) -> CredentialPublic:
    cred = crud.create(session=session, owner_id=user.user_id, data=body, store=store)
    session.commit()
    return _public(session, user.user_id, cred)


@router.get("", response_model=CredentialsPublic)
def list_credentials(user: CurrentPrincipal, session: SessionDep, page: PageDep) -> CredentialsPublic:
    items, total = crud.list_page(session=session, owner_id=user.user_id, limit=page.limit, offset=page.offset)
    users = crud.used_by(session=session, owner_id=user.user_id, creds=items)
    return CredentialsPublic(items=[crud.to_public(c, users[c.id]) for c in items if c.id is not None], total=total)


@router.get("/{credential_id}", response_model=CredentialPublic)
def get_credential(credential_id: int, user: CurrentPrincipal, session: SessionDep) -> CredentialPublic:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    return _public(session, user.user_id, cred)


@router.put("/{credential_id}", response_model=CredentialPublic)
@router.patch("/{credential_id}", response_model=CredentialPublic)
def update_credential(credential_id: int, body: CredentialUpdate, user: CurrentPrincipal, session: SessionDep,
                      store: SecretStoreDep, force: Force = False) -> CredentialPublic:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    cred = crud.update(session=session, cred=cred, data=body, store=store, force=force)
    session.commit()
    return _public(session, user.user_id, cred)


@router.delete("/{credential_id}", status_code=204)
def delete_credential(credential_id: int, user: CurrentPrincipal, session: SessionDep, store: SecretStoreDep,
                      force: Force = False) -> Response:
    cred = crud.get(session=session, owner_id=user.user_id, credential_id=credential_id)
    crud.delete(session=session, cred=cred, store=store, force=force)
    session.commit()
    return Response(status_code=204)
