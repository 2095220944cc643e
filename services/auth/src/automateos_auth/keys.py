"""The RS256 signing key: loaded from configuration, or generated once into the data folder (dev)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from automateos_common.auth import ALGORITHM, jwks_document
from automateos_common.jsonutil import utcnow

from .settings import AuthSettings

log = logging.getLogger(__name__)
KEY_FILE = "keys/auth-signing-key.pem"


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_kid(public_key: rsa.RSAPublicKey) -> str:
    """JWK thumbprint (RFC 7638): the same key always gets the same kid, across restarts."""
    nums = public_key.public_numbers()
    canonical = json.dumps({"e": _b64url_uint(nums.e), "kty": "RSA", "n": _b64url_uint(nums.n)},
                           separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _generate(path: Path) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    log.info("generated a new signing key at %s", path)
    return pem


def load_private_pem(settings: AuthSettings) -> bytes:
    if settings.auth_private_key is not None:
        return settings.auth_private_key.get_secret_value().encode()
    path = settings.auth_private_key_file or settings.data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes()
    if settings.auth_private_key_file is not None:
        raise RuntimeError(f"AUTOMATEOS_AUTH_PRIVATE_KEY_FILE={path} does not exist")
    return _generate(path)


@dataclass
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> SigningKey:
        key = serialization.load_pem_private_key(load_private_pem(settings), password=None)
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise RuntimeError("the signing key must be an RSA key of at least 2048 bits")
        return cls(private_key=key, kid=rfc7638_kid(key.public_key()))

    def jwks(self) -> dict[str, Any]:
        return jwks_document({self.kid: self.private_key.public_key()})

    def issue(self, *, user_id: int, email: str, settings: AuthSettings) -> tuple[str, int]:
        now = utcnow()
        ttl = settings.access_token_ttl_s
        claims = {
            "sub": str(user_id), "email": email, "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
            "iat": now, "nbf": now, "exp": now + timedelta(seconds=ttl), "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid}), ttl
