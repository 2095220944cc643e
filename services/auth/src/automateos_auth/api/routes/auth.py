from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from automateos_common.errors import EmailTakenError, UnauthorizedError

from ... import crud
from ...schemas import Token, UserPublic, UserRegister
from ..deps import SessionDep, SettingsDep, SigningKeyDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/register", status_code=201, response_model=UserPublic)
def register(body: UserRegister, session: SessionDep) -> UserPublic:
    if crud.get_user_by_email(session=session, email=body.email) is not None:
        raise EmailTakenError()
    user = crud.create_user(session=session, email=body.email, password=body.password)
    session.commit()
    return UserPublic.model_validate(user, from_attributes=True)


@router.post("/token", response_model=Token)
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep,
          key: SigningKeyDep) -> Token:
    user = crud.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        # Same answer whether the email exists or not.
        raise UnauthorizedError("Incorrect email or password")
    session.commit()  # persists an upgraded password hash, if any
    assert user.id is not None
    access_token, ttl = key.issue(user_id=user.id, email=user.email, settings=settings)
    return Token(access_token=access_token, expires_in=ttl)


@router.get("/jwks.json")
def jwks(key: SigningKeyDep) -> dict[str, Any]:
    """The public keys that verify access tokens (RS256, with `kid`)."""
    return key.jwks()
