from __future__ import annotations

from fastapi import APIRouter

from ...schemas import UserPublic
from ..deps import CurrentUser

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)
