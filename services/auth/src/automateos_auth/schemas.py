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
    expires_in: int = Field(description="Seconds the access token is valid for.")
    refresh_token: str = Field(description="Single use: `POST /api/v1/auth/refresh` exchanges it for a new pair.")
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid for.")


class RefreshRequest(BaseModel):
    # Ours are 48 characters; the bound keeps a hostile body from being hashed at any length.
    refresh_token: str = Field(min_length=1, max_length=512)
