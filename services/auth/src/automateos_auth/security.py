"""Password hashing: Argon2id through pwdlib; bcrypt hashes still verify (and are upgraded)."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))

# Verified when the email is unknown, so both answers take the same time (no user enumeration).
DUMMY_HASH = password_hash.hash("automateos-timing-equaliser")


def hash_password(password: str) -> str:
    return password_hash.hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(valid, new hash when the stored one should be upgraded)."""
    try:
        return password_hash.verify_and_update(password, hashed)
    except ValueError:
        # bcrypt 5 refuses passwords over 72 bytes instead of truncating them. Such a password
        # cannot be the one a legacy bcrypt hash was made from (it would have been truncated).
        return False, None
