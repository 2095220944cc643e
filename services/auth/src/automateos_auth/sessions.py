"""Refresh tokens: opaque, single use, rotated on every refresh, revoked by family.

A login starts a family; each refresh spends the presented token and issues the next one in the
same family. A spent token presented again means it was copied (the client or an attacker holds a
token the other already used), so the whole family is revoked: both must log in again. Only the
SHA-256 of a token is stored. Functions take a session and never commit; the route does.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from .models import RefreshToken, User

# Recognisable in a leaked log or repository (secret scanners), and by `looks_like_refresh_token`.
PREFIX = "aosr_"


class RefreshRejected(Exception):
    """The token cannot be used; `message` is safe to show (it never contains the token)."""

    def __init__(self, message: str, *, reused_by: RefreshToken | None = None, revoked: int = 0) -> None:
        self.message = message
        # A reuse: the family (session) and user of the token, and how many tokens that revoked (the audit).
        self.user_id = reused_by.user_id if reused_by is not None else None
        self.family_id = reused_by.family_id if reused_by is not None else None
        self.revoked = revoked
        super().__init__(message)


@dataclass(frozen=True)
class Issued:
    token: str
    expires_at: datetime
    family_id: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(dt: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def issue(*, session: Session, user_id: int, ttl_s: int, now: datetime, family_id: str | None = None) -> Issued:
    """A new refresh token: of a new family (a login) or of `family_id` (a rotation)."""
    token = PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    family = family_id or uuid.uuid4().hex
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(RefreshToken(token_hash=hash_token(token), family_id=family, user_id=user_id, created_at=now,
                             expires_at=expires_at))
    session.flush()
    return Issued(token=token, expires_at=expires_at, family_id=family)


def revoke_family(*, session: Session, family_id: str, now: datetime) -> int:
    result = session.exec(
        update(RefreshToken).where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


def rotate(*, session: Session, token: str, ttl_s: int, now: datetime,
           before_spend: Callable[[int], None] | None = None) -> tuple[User, Issued]:
    """Spend `token` and issue the next one of its family. Raises RefreshRejected; after a reuse the
    family is revoked in `session`, so the caller must commit before answering. `before_spend(user_id)`
    may refuse (raise) while the token is still unspent (a rate limit)."""
    row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        raise RefreshRejected("Invalid refresh token")
    if row.spent_at is not None:
        revoked = revoke_family(session=session, family_id=row.family_id, now=now)
        raise RefreshRejected("Refresh token already used; the session is revoked", reused_by=row, revoked=revoked)
    if _aware(row.expires_at) <= now:
        raise RefreshRejected("Refresh token expired")
    if before_spend is not None:
        before_spend(row.user_id)
    # Spent only if nobody spent it meanwhile: of two concurrent refreshes with one token, one wins and
    # the other is a reuse (the database decides, not a read before the write).
    spent = session.exec(
        update(RefreshToken).where(col(RefreshToken.id) == row.id, col(RefreshToken.spent_at).is_(None),
                                   col(RefreshToken.revoked_at).is_(None))
        .values(spent_at=now)
    )
    assert isinstance(spent, CursorResult)
    if spent.rowcount != 1:
        revoked = revoke_family(session=session, family_id=row.family_id, now=now)
        raise RefreshRejected("Refresh token already used; the session is revoked", reused_by=row, revoked=revoked)
    user = session.get(User, row.user_id)
    if user is None:  # deleted meanwhile (the foreign key cascades, but not within this transaction)
        raise RefreshRejected("Invalid refresh token")
    return user, issue(session=session, user_id=row.user_id, ttl_s=ttl_s, now=now, family_id=row.family_id)


def logout(*, session: Session, token: str, now: datetime) -> bool:
    """Revoke the family of `token` (spent or not). False when the token is unknown."""
    row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))).first()
    if row is None:
        return False
    revoke_family(session=session, family_id=row.family_id, now=now)
    return True
