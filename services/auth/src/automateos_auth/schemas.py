"""Wire models of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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


class SecurityEventPublic(BaseModel):
    id: str = Field(description="The event's id (also in its audit log line).")
    event: str = Field(description="What happened: `login.failed`, `token.rejected`, ... (docs/api.md).")
    at: datetime
    ip: str | None = Field(description="The client's address, as the service saw it.")
    request_id: str | None = Field(description="The request's `X-Request-ID`.")
    service: str = Field(description="The service that recorded it: auth, workflows, ingress, engine.")
    details: dict[str, Any] = Field(description="Per event (docs/api.md); never a password, token or secret.")

    @field_serializer("at")
    def _ts(self, v: datetime) -> str | None:
        return isoformat(v)


class SecurityEventsPublic(BaseModel):
    items: list[SecurityEventPublic]
    total: int
