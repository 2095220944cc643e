from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session

from automateos_common.errors import EmailTakenError, UnauthorizedError
from automateos_common.jsonutil import utcnow

from ... import crud, sessions
from ...keys import KeyRing
from ...models import User
from ...schemas import RefreshRequest, Token, UserPublic, UserRegister
from ...settings import AuthSettings
from ..deps import KeyRingDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Bad credentials or refresh token"}}


@router.post("/register", status_code=201, response_model=UserPublic)
def register(body: UserRegister, session: SessionDep) -> UserPublic:
    if crud.get_user_by_email(session=session, email=body.email) is not None:
        raise EmailTakenError()
    user = crud.create_user(session=session, email=body.email, password=body.password)
    session.commit()
    return UserPublic.model_validate(user, from_attributes=True)


def _pair(*, session: Session, user: User, keys: KeyRing, settings: AuthSettings,
          issued: sessions.Issued | None = None) -> Token:
    assert user.id is not None
    now = utcnow()
    if issued is None:
        issued = sessions.issue(session=session, user_id=user.id, ttl_s=settings.refresh_token_ttl_s, now=now)
    access_token, ttl = keys.issue(user_id=user.id, email=user.email, settings=settings)
    return Token(access_token=access_token, expires_in=ttl, refresh_token=issued.token,
                 refresh_expires_in=settings.refresh_token_ttl_s)


@router.post("/token", response_model=Token, responses=UNAUTHORIZED)
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep,
          keys: KeyRingDep) -> Token:
    """Log in: an access token and the first refresh token of a new session."""
    user = crud.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        # Same answer whether the email exists or not.
        raise UnauthorizedError("Incorrect email or password")
    pair = _pair(session=session, user=user, keys=keys, settings=settings)
    session.commit()  # the refresh token, and an upgraded password hash if any
    return pair


@router.post("/refresh", response_model=Token, responses=UNAUTHORIZED)
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep, keys: KeyRingDep) -> Token:
    """Exchange a refresh token (single use) for a new access token and refresh token. Presenting a
    refresh token that was already exchanged revokes its whole session."""
    try:
        user, issued = sessions.rotate(session=session, token=body.refresh_token,
                                       ttl_s=settings.refresh_token_ttl_s, now=utcnow())
    except sessions.RefreshRejected as exc:
        session.commit()  # a detected reuse has revoked the family
        raise UnauthorizedError(exc.message) from None
    pair = _pair(session=session, user=user, keys=keys, settings=settings, issued=issued)
    session.commit()
    return pair


@router.post("/logout", status_code=204, response_class=Response)
def logout(body: RefreshRequest, session: SessionDep) -> Response:
    """End the session the refresh token belongs to: every refresh token of it stops working.
    Access tokens already issued stay valid until they expire. Unknown tokens are 204 too."""
    sessions.logout(session=session, token=body.refresh_token, now=utcnow())
    session.commit()
    return Response(status_code=204)


@router.get("/jwks.json")
def jwks(keys: KeyRingDep) -> dict[str, Any]:
    """The public keys that verify access tokens (RS256, with `kid`): the current one, and during a
    rotation's grace period the previous one."""
    return keys.jwks()
