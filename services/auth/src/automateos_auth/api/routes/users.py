from __future__ import annotations

from fastapi import APIRouter

from ... import events
from ...schemas import SecurityEventPublic, SecurityEventsPublic, UserPublic
from ..deps import CurrentUser, PageDep, SessionDep

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/me/events", response_model=SecurityEventsPublic)
def my_events(user: CurrentUser, session: SessionDep, page: PageDep) -> SecurityEventsPublic:
    """The caller's security events, newest first: logins, failed logins, rejected tokens, a reused refresh
    token, someone else's attempts at the caller's resources ... (docs/api.md, "Security events")."""
    assert user.id is not None
    items, total = events.list_events(session=session, user_id=user.id, limit=page.limit, offset=page.offset)
    return SecurityEventsPublic(items=[SecurityEventPublic.model_validate(e, from_attributes=True) for e in items],
                                total=total)
