"""Tables owned by the auth service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

from automateos_common.db import service_metadata
from automateos_common.jsonutil import utcnow


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased: emails compare case-insensitively (API.md).
    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str = Field(max_length=512)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class RefreshToken(SQLModel, table=True):
    """One refresh token of a session (a family: the login's token and every token rotated from it).

    Only the token's SHA-256 is stored: the database never holds a usable token."""

    __tablename__ = "refresh_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)  # hex SHA-256 of the token
    family_id: str = Field(max_length=32, index=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
                                          index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Set when the token was exchanged for a new pair: presenting it again is reuse (the family is revoked).
    spent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # Set on the whole family by logout or detected reuse.
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class SecurityEvent(SQLModel, table=True):
    """A security event of one user (automateos_common.audit), recorded from the stream `aos:audit`.

    `id` is the event's own id (emitted with it, in the log line too): recording the same entry twice
    (at-least-once delivery, a re-sent XADD) writes one row."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_user_at", "user_id", "at"),)

    id: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    event: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=128)
    service: str = Field(max_length=32)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# This service's tables only (migrations compare against this, not SQLModel's global metadata).
METADATA = service_metadata(User.__table__, RefreshToken.__table__,  # type: ignore[attr-defined]
                            SecurityEvent.__table__)  # type: ignore[attr-defined]
