"""Wire models of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, field_serializer

from automateos_common.jsonutil import isoformat


class UserRegister(BaseModel):
    email: EmailStr = Field(max_length=320)
    # Counted in characters; every one of them counts (no 72-byte truncation as with bcrypt).
    password: str = Field(min_length=8, max_length=256)


class UserPublic(BaseModel):
    id: int
    email: str
    created_at: datetime

    @field_serializer("created_at")
    def _ts(self, v: datetime) -> str | None:
        return isoformat(v)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
