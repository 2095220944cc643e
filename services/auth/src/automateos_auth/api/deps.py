"""Dependencies as Annotated aliases, composed from each other."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from automateos_common.auth import CurrentPrincipal
from automateos_common.db import get_session
from automateos_common.errors import UnauthorizedError

from ..keys import KeyRing
from ..models import User
from ..settings import AuthSettings, get_settings


def get_key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.key_ring
    return keys


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[AuthSettings, Depends(get_settings)]
KeyRingDep = Annotated[KeyRing, Depends(get_key_ring)]


def get_current_user(session: SessionDep, principal: CurrentPrincipal) -> User:
    user = session.get(User, principal.user_id)
    if user is None:  # a valid token for a user that no longer exists
        raise UnauthorizedError("Invalid token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
