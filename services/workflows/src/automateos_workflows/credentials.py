"""Credentials' data access: keyword-only functions that take a session and never commit.

Values go into the SecretStore as soon as they arrive and never come back out here: this module
seals, it never opens (the engine does, while a step runs). Ownership is part of every query.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from automateos_common.credentials import CREDENTIAL_TYPES, SENDABLE_TYPES, hint, parse_ref, split
from automateos_common.errors import (
    CredentialInUseError,
    CredentialNameTakenError,
    NotFoundError,
    NotOwnedError,
    ServiceUnavailableError,
    ValidationError,
    pydantic_errors,
)
from automateos_common.jsonutil import utcnow
from automateos_common.nodes.builtin.webhook import AUTH_CREDENTIAL_TYPES
from automateos_common.secretstore import SecretRef, SecretStore, SecretStoreError

from .models import Credential, Workflow
from .schemas import CredentialCreate, CredentialPublic, CredentialUpdate, WorkflowRef


def typed_refs(definition: Any) -> Iterator[tuple[str, int | str, frozenset[str]]]:
    """(field, reference, credential types it may name) of every credential reference in a definition:
    each node config's `credential`, and a webhook trigger's `auth.credential`."""
    nodes = definition.get("nodes") if isinstance(definition, dict) else None
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        config = node.get("config") if isinstance(node, dict) else None
        if not isinstance(config, dict):
            continue
        found: list[tuple[str, Any, frozenset[str]]] = [("credential", config.get("credential"), SENDABLE_TYPES)]
        auth = config.get("auth")
        if node.get("type") == "webhook" and isinstance(auth, dict):
            kinds = frozenset(AUTH_CREDENTIAL_TYPES.get(str(auth.get("type")), ()))
            found.append(("auth.credential", auth.get("credential"), kinds))
        for name, ref, kinds in found:
            if ref is None or isinstance(ref, bool):
                continue
            try:
                yield f"definition.nodes[{i}].config.{name}", parse_ref(ref), kinds
            except ValueError:
                continue  # the node's schema has said so already


def node_refs(definition: Any) -> Iterator[tuple[str, int | str]]:
    """(field, reference) of every credential reference in a definition."""
    for field, ref, _ in typed_refs(definition):
        yield field, ref


def find(*, session: Session, owner_id: int, ref: int | str) -> Credential | None:
    where = Credential.id == ref if isinstance(ref, int) else Credential.name == ref
    return session.exec(select(Credential).where(Credential.owner_id == owner_id, where)).first()


def get(*, session: Session, owner_id: int, credential_id: int) -> Credential:
    cred = session.get(Credential, credential_id)
    if cred is None:
        raise NotFoundError("Credential not found")
    if cred.owner_id != owner_id:
        raise NotOwnedError("Credential not found", resource="credential", resource_id=credential_id,
                            owner_id=cred.owner_id)
    return cred


def check_definition(*, session: Session, owner_id: int, definition: Any) -> None:
    """422 at save time for a reference to a credential the owner does not have, or of the wrong type."""
    for field, ref, kinds in typed_refs(definition):
        cred = find(session=session, owner_id=owner_id, ref=ref)
        what = f"id {ref}" if isinstance(ref, int) else f"named '{ref}'"
        if cred is None:
            raise ValidationError("Invalid workflow definition", field=field,
                                  issue=f"you have no credential {what}")
        if cred.type not in kinds:
            allowed = " or ".join(sorted(kinds))
            raise ValidationError("Invalid workflow definition", field=field,
                                  issue=f"the credential {what} is a {cred.type} credential; this needs {allowed}")


def used_by(*, session: Session, owner_id: int, creds: list[Credential],
            by_name_only: bool = False) -> dict[int, list[WorkflowRef]]:
    """The owner's workflows referencing each credential, by id or name (or by name only)."""
    out: dict[int, list[WorkflowRef]] = {c.id: [] for c in creds if c.id is not None}
    if not creds:
        return out
    by_id: dict[int | str, int | None] = {c.id: c.id for c in creds if not by_name_only and c.id is not None}
    by_name: dict[int | str, int | None] = {c.name: c.id for c in creds}
    rows = session.exec(select(Workflow.id, Workflow.name, Workflow.definition)
                        .where(Workflow.owner_id == owner_id).order_by(col(Workflow.id))).all()
    for wf_id, wf_name, definition in rows:
        hits = {(by_id if isinstance(ref, int) else by_name).get(ref) for _, ref in node_refs(definition)}
        for cid in hits - {None}:
            assert cid is not None and wf_id is not None
            out[cid].append(WorkflowRef(id=wf_id, name=wf_name))
    return out


def to_public(cred: Credential, users: list[WorkflowRef]) -> CredentialPublic:
    assert cred.id is not None
    return CredentialPublic(id=cred.id, name=cred.name, type=cred.type, fields=cred.public,
                            hint=cred.hint, used_by=users, created_at=cred.created_at, updated_at=cred.updated_at)


def list_page(*, session: Session, owner_id: int, limit: int, offset: int) -> tuple[list[Credential], int]:
    total = session.exec(select(func.count()).select_from(Credential).where(Credential.owner_id == owner_id)).one()
    items = session.exec(select(Credential).where(Credential.owner_id == owner_id)
                         .order_by(col(Credential.id).desc()).offset(offset).limit(limit)).all()
    return list(items), int(total)


def _validated(type_: str, data: dict[str, Any]) -> tuple[dict[str, Any], bytes, str | None]:
    """(public fields, sealed-to-be secret JSON, hint) of `data` checked against the type's schema."""
    schema = CREDENTIAL_TYPES[type_]
    try:
        value = schema.model_validate(data)
    except PydanticValidationError as exc:
        # pydantic_errors keeps each error's message only, never the input (which may be the secret).
        errors = pydantic_errors(list(exc.errors()), prefix="data")
        raise ValidationError(f"Invalid {type_} credential", field=errors[0]["field"], issue=errors[0]["issue"],
                              errors=errors) from None
    public, secret = split(value)
    return public, orjson.dumps(secret), hint(str(secret[schema.hint_field]))


def _check_name(session: Session, owner_id: int, name: str, exclude: int | None = None) -> None:
    other = find(session=session, owner_id=owner_id, ref=name)
    if other is not None and other.id != exclude:
        raise CredentialNameTakenError(details={"field": "name"})


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:  # the same name created at the same moment by another request
        raise CredentialNameTakenError(details={"field": "name"}) from None


def _put(store: SecretStore, owner_id: int, credential_id: int, secret: bytes) -> str:
    try:
        return store.put(owner_id, credential_id, secret)
    except SecretStoreError as exc:  # the store's message names no part of the value
        raise ServiceUnavailableError(f"The secret store cannot keep the value: {exc}",
                                      headers={"Retry-After": "5"}) from None


def _delete(store: SecretStore, ref: SecretRef) -> None:
    try:
        store.delete(ref)
    except SecretStoreError as exc:
        raise ServiceUnavailableError(f"The secret store cannot delete the value: {exc}",
                                      headers={"Retry-After": "5"}) from None


def create(*, session: Session, owner_id: int, data: CredentialCreate, store: SecretStore) -> Credential:
    public, secret, value_hint = _validated(data.type, data.data)
    _check_name(session, owner_id, data.name)
    cred = Credential(owner_id=owner_id, name=data.name, type=data.type, public=public, secret_ref="",
                      hint=value_hint)
    session.add(cred)
    _flush(session)  # the id is part of what the value is sealed to
    assert cred.id is not None
    cred.secret_ref = _put(store, owner_id, cred.id, secret)
    session.add(cred)
    session.flush()
    return cred


def update(*, session: Session, cred: Credential, data: CredentialUpdate, store: SecretStore,
           force: bool = False) -> Credential:
    assert cred.id is not None
    changed = False
    if data.name is not None and data.name != cred.name:
        _check_name(session, cred.owner_id, data.name, exclude=cred.id)
        users = used_by(session=session, owner_id=cred.owner_id, creds=[cred], by_name_only=True)[cred.id]
        if users and not force:
            raise CredentialInUseError(
                "Workflows reference this credential by its name; renaming it would break them "
                "(reference it by id, or rename with ?force=true)",
                details={"workflows": [u.model_dump() for u in users]})
        cred.name = data.name
        changed = True
    if data.data is not None:
        public, secret, value_hint = _validated(cred.type, data.data)
        old = SecretRef(cred.owner_id, cred.id, cred.secret_ref)
        cred.public, cred.hint = public, value_hint
        cred.secret_ref = _put(store, cred.owner_id, cred.id, secret)
        if cred.secret_ref != old.reference:  # a store that keeps versions (aws) put a new one at the same place
            _delete(store, old)
        cred.version += 1
        changed = True
    if changed:
        cred.updated_at = utcnow()
        session.add(cred)
        _flush(session)
    return cred


def delete(*, session: Session, cred: Credential, store: SecretStore, force: bool) -> None:
    assert cred.id is not None
    users = used_by(session=session, owner_id=cred.owner_id, creds=[cred])[cred.id]
    if users and not force:
        raise CredentialInUseError(details={"workflows": [u.model_dump() for u in users]})
    ref = SecretRef(cred.owner_id, cred.id, cred.secret_ref)
    session.delete(cred)
    session.flush()
    _delete(store, ref)
