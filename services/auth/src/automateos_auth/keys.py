"""The RS256 signing keys: the current one (from configuration, or generated once into the data folder)
and the retired ones still published during their grace period.

Rotation (`python -m automateos_auth rotate-key`) first writes the current key's public half into the
retired folder, named `<grace end, UTC>-<kid>.pub.pem`, then replaces the key file with a new key. A
running auth notices both within `RELOAD_CHECK_S` and signs with the new key; the JWKS lists old and
new until the grace ends, so every token the old key signed keeps verifying until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
RETIRED_DIR = "retired"  # next to the key file, unless AUTOMATEOS_AUTH_RETIRED_KEYS_DIR says otherwise
RETIRED_NAME = re.compile(r"^(?P<until>\d{8}T\d{6}Z)-[A-Za-z0-9_-]{1,64}\.pub\.pem$")
UNTIL_FORMAT = "%Y%m%dT%H%M%SZ"
RELOAD_CHECK_S = 5.0  # how often a running auth looks for a rotated key (two stat calls)


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_kid(public_key: rsa.RSAPublicKey) -> str:
    """JWK thumbprint (RFC 7638): the same key always gets the same kid, across restarts."""
    nums = public_key.public_numbers()
    canonical = json.dumps({"e": _b64url_uint(nums.e), "kty": "RSA", "n": _b64url_uint(nums.n)},
                           separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _new_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _generate(path: Path) -> bytes:
    pem = _new_pem()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    log.info("generated a new signing key at %s", path)
    return pem


def key_file(settings: AuthSettings) -> Path | None:
    """The file the current key is read from; None when it is given in AUTOMATEOS_AUTH_PRIVATE_KEY."""
    if settings.auth_private_key is not None:
        return None
    return settings.auth_private_key_file or settings.data_dir / KEY_FILE


def retired_dir(settings: AuthSettings) -> Path | None:
    if settings.auth_retired_keys_dir is not None:
        return settings.auth_retired_keys_dir
    path = key_file(settings)
    return None if path is None else path.parent / RETIRED_DIR


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


@dataclass(frozen=True)
class RetiredKey:
    public_key: rsa.RSAPublicKey
    kid: str
    until: datetime


def load_retired(directory: Path | None) -> list[RetiredKey]:
    """The retired keys in `directory`; a file that does not parse is skipped with a warning."""
    if directory is None or not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.iterdir()):
        m = RETIRED_NAME.match(path.name)
        if m is None:
            continue
        try:
            until = datetime.strptime(m["until"], UNTIL_FORMAT).replace(tzinfo=timezone.utc)
            public = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("skipping retired key %s: %s", path.name, type(exc).__name__)
            continue
        if isinstance(public, rsa.RSAPublicKey):
            keys.append(RetiredKey(public_key=public, kid=rfc7638_kid(public), until=until))
    return keys


def _stamp(settings: AuthSettings) -> tuple[object, ...]:
    """What changes when a key is rotated: the key file (replaced) and the retired folder (a file added)."""
    out: list[object] = []
    for path in (key_file(settings), retired_dir(settings)):
        try:
            st = path.stat() if path is not None else None
        except FileNotFoundError:
            st = None
        out.append(None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class KeyRing:
    """The current signing key and the retired keys still in their grace period; reloads after a rotation."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._stamp = _stamp(settings)
        self._state = (SigningKey.from_settings(settings), load_retired(retired_dir(settings)))

    @property
    def current(self) -> SigningKey:
        self.maybe_reload()
        return self._state[0]

    def maybe_reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < RELOAD_CHECK_S:
            return
        with self._lock:
            self._checked_at = now
            stamp = _stamp(self.settings)
            if stamp == self._stamp and not force:
                return
            try:
                state = (SigningKey.from_settings(self.settings), load_retired(retired_dir(self.settings)))
            except (OSError, ValueError, RuntimeError) as exc:  # half-written file: keep signing with what we have
                log.error("reloading the signing keys failed (%s); keeping the loaded ones", type(exc).__name__)
                return
            if state[0].kid != self._state[0].kid:
                log.info("signing key rotated: now %s", state[0].kid)
            self._stamp, self._state = stamp, state

    def public_keys(self, now: datetime | None = None) -> dict[str, rsa.RSAPublicKey]:
        """kid -> public key: the current key, then the retired ones whose grace has not ended."""
        self.maybe_reload()
        current, retired = self._state
        now = now or utcnow()
        keys = {current.kid: current.private_key.public_key()}
        for r in retired:
            if r.until > now and r.kid not in keys:
                keys[r.kid] = r.public_key
        return keys

    def jwks(self) -> dict[str, Any]:
        return jwks_document(self.public_keys())

    async def key_for(self, kid: str) -> Any | None:
        """The `KeySource` auth's own TokenVerifier uses: no HTTP round trip to itself."""
        return self.public_keys().get(kid)

    def issue(self, *, user_id: int, email: str, settings: AuthSettings) -> tuple[str, int]:
        return self.current.issue(user_id=user_id, email=email, settings=settings)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rotate_key(settings: AuthSettings, *, grace_s: int | None = None, now: datetime | None = None) -> RetiredKey:
    """Retire the current key (published until now + grace) and replace it with a new one."""
    path = key_file(settings)
    rdir = retired_dir(settings)
    if path is None or rdir is None:
        raise RuntimeError("the signing key comes from AUTOMATEOS_AUTH_PRIVATE_KEY; rotate-key needs a key file "
                           "(AUTOMATEOS_AUTH_PRIVATE_KEY_FILE or the generated one)")
    now = now or utcnow()
    grace = settings.key_grace_s() if grace_s is None else grace_s
    current = SigningKey.from_settings(settings)
    retired = RetiredKey(public_key=current.private_key.public_key(), kid=current.kid,
                         until=(now + timedelta(seconds=grace)).replace(microsecond=0) + timedelta(seconds=1))
    rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in load_retired(rdir):  # keys whose grace is over: nothing they signed is valid any more
        if old.until <= now:
            for f in rdir.glob(f"*-{old.kid}.pub.pem"):
                f.unlink(missing_ok=True)
    public_pem = retired.public_key.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    # The old key is published before the new one signs anything.
    _write_atomically(rdir / f"{retired.until.strftime(UNTIL_FORMAT)}-{retired.kid}.pub.pem", public_pem, 0o644)
    _write_atomically(path, _new_pem(), 0o600)
    log.info("rotated the signing key: %s retired until %s", retired.kid, retired.until.isoformat())
    return retired
