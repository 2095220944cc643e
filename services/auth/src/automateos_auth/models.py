"""Tables owned by the auth service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
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


# This service's tables only (migrations compare against this, not SQLModel's global metadata).
METADATA = service_metadata(User.__table__)  # type: ignore[attr-defined]
