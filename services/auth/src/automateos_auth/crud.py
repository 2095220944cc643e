"""Data access for users. Functions take a session and never commit; the route owns the transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from automateos_common.errors import EmailTakenError

from .models import User
from .security import DUMMY_HASH, hash_password, verify_password


def normalize_email(email: str) -> str:
    return email.strip().lower()


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalize_email(email))).first()


def create_user(*, session: Session, email: str, password: str) -> User:
    user = User(email=normalize_email(email), password_hash=hash_password(password))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise EmailTakenError() from None
    return user


def authenticate(*, session: Session, email: str, password: str) -> tuple[User | None, int | None]:
    """(the user when the password is right, the id of the account named whether or not it is right)."""
    user = get_user_by_email(session=session, email=email)
    if user is None:
        verify_password(password, DUMMY_HASH)
        return None, None
    ok, new_hash = verify_password(password, user.password_hash)
    if not ok:
        return None, user.id
    if new_hash:
        user.password_hash = new_hash
        session.add(user)
    return user, user.id
