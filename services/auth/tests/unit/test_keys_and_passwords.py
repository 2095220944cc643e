"""Signing keys (generated once, stable kid) and password hashing (Argon2id, every character counts)."""

from __future__ import annotations

import os
import stat

import bcrypt
import jwt
import pytest

from automateos_auth.keys import SigningKey, rfc7638_kid
from automateos_auth.security import hash_password, verify_password
from automateos_auth.settings import AuthSettings


def test_dev_key_is_generated_once_private_and_keeps_its_kid(tmp_path):
    settings = AuthSettings(data_dir=tmp_path)
    first = SigningKey.from_settings(settings)
    path = tmp_path / "keys" / "auth-signing-key.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = SigningKey.from_settings(settings)  # a restart
    assert second.kid == first.kid == rfc7638_kid(first.private_key.public_key())
    assert first.jwks()["keys"][0]["kid"] == first.kid
    assert first.jwks()["keys"][0]["alg"] == "RS256"
    assert "d" not in first.jwks()["keys"][0]  # public parts only


def test_configured_key_file_must_exist(tmp_path):
    with pytest.raises(RuntimeError, match="does not exist"):
        SigningKey.from_settings(AuthSettings(data_dir=tmp_path, auth_private_key_file=tmp_path / "nope.pem"))


def test_issued_token_carries_the_contract_claims(tmp_path):
    settings = AuthSettings(data_dir=tmp_path)
    key = SigningKey.from_settings(settings)
    token, ttl = key.issue(user_id=42, email="a@example.com", settings=settings)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    claims = jwt.decode(token, key.private_key.public_key(), algorithms=["RS256"], audience="automateos-api")
    assert {"sub", "iat", "exp", "iss", "aud", "email", "jti", "nbf"} == set(claims)
    assert (claims["sub"], claims["iss"], claims["exp"] - claims["iat"]) == ("42", "automateos", ttl)


def test_argon2id_and_every_character_of_a_long_password_counts():
    long_pw = "p" * 200 + "A"
    hashed = hash_password(long_pw)
    assert hashed.startswith("$argon2id$")
    assert verify_password(long_pw, hashed) == (True, None)
    # bcrypt would see only the first 72 bytes and accept this one.
    assert verify_password("p" * 200 + "B", hashed) == (False, None)


def test_legacy_bcrypt_hash_verifies_and_is_upgraded_to_argon2id():
    legacy = bcrypt.hashpw(b"old password", bcrypt.gensalt(rounds=4)).decode()
    ok, upgraded = verify_password("old password", legacy)
    assert ok is True
    assert upgraded is not None and upgraded.startswith("$argon2id$")
    assert verify_password("wrong", legacy) == (False, None)


def test_long_password_against_a_legacy_bcrypt_hash_is_a_mismatch_not_an_error():
    legacy = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4)).decode()
    # bcrypt 5 raises for > 72 bytes; bcrypt 4 would have truncated and said yes.
    assert verify_password("x" * 100, legacy) == (False, None)
