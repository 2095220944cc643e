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
from ..ratelimit import Limiter
from ..settings import AuthSettings, get_settings


def get_key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.key_ring
    return keys


def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[AuthSettings, Depends(get_settings)]
KeyRingDep = Annotated[KeyRing, Depends(get_key_ring)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]


def get_client_ip(request: Request, settings: SettingsDep) -> str:
    """The address rate limits count per: the configured header (set by the proxy in front), else the peer."""
    if settings.client_ip_header:
        value = request.headers.get(settings.client_ip_header, "").split(",")[0].strip()
        if value:
            return value[:64]
    return request.client.host if request.client else "unknown"


ClientIP = Annotated[str, Depends(get_client_ip)]


def get_current_user(session: SessionDep, principal: CurrentPrincipal) -> User:
    user = session.get(User, principal.user_id)
    if user is None:  # a valid token for a user that no longer exists
        raise UnauthorizedError("Invalid token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
