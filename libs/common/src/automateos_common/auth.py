"""Access-token verification with the auth service's published keys (JWKS).

Services never see the private key. Keys are fetched from auth, cached by `kid`, and kept
when auth is unreachable, so a restart of auth with the same key breaks nobody. An unknown
`kid` (a rotated key) triggers at most one refetch per `min_refresh_s` (a flood of forged kids
cannot turn into a flood of requests to auth). A key that a fresh JWKS no longer lists (its
grace period after a rotation ended) is dropped `retain_s` later: long enough for a rolling
restart of several auth replicas, short enough that a retired key stops verifying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from . import audit
from .errors import UnauthorizedError

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
JWKS_PATH = "/api/v1/auth/jwks.json"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    email: str | None = None


class TokenRejected(UnauthorizedError):
    """A JWT refused (401 as before). `reason` names why (never the token's text); `user_id` is the token's
    `sub` only when its signature verified (an expired token, a wrong audience), else None: a forged token
    must not put events into anyone's list."""

    def __init__(self, message: str, reason: str, *, user_id: int | None = None, alg: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.user_id = user_id
        self.alg = alg


def _signed_subject(token: str) -> int | None:
    """`sub` of a token whose signature already verified (the claims check failed after it)."""
    try:
        return int(jwt.decode(token, options={"verify_signature": False})["sub"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


# PyJWT checks the signature before the claims, so these mean the token is ours (its sub is trustworthy).
_CLAIM_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidAudienceError, "wrong_audience"), (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.ImmatureSignatureError, "not_yet_valid"), (jwt.MissingRequiredClaimError, "missing_claim"),
)


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any | None: ...


class JWKSCache:
    def __init__(self, jwks_url: str, *, min_refresh_s: float = 10.0, max_age_s: float = 3600.0,
                 retain_s: float = 300.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.jwks_url = jwks_url
        self.min_refresh_s = min_refresh_s
        self.max_age_s = max_age_s
        self.retain_s = retain_s
        self._transport = transport
        self._keys: dict[str, Any] = {}
        self._omitted: dict[str, float] = {}  # kid -> when a fetched JWKS first lacked it
        self._fetched_at = 0.0
        self._attempted_at = -1e9
        self._lock = asyncio.Lock()

    def load(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "RSA" or not jwk.get("kid"):
                continue
            if jwk.get("alg") not in (None, ALGORITHM) or jwk.get("use") not in (None, "sig"):
                continue
            keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk, algorithm=ALGORITHM).key
        now = time.monotonic()
        # Keep keys we already trust for a while: one auth replica mid-rotation may briefly omit an old key.
        for kid in self._keys.keys() - keys.keys():
            self._omitted.setdefault(kid, now)
        for kid in keys:
            self._omitted.pop(kid, None)
        self._keys.update(keys)
        self._fetched_at = now

    async def refresh(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=5.0, trust_env=False) as client:
                resp = await client.get(self.jwks_url)
                resp.raise_for_status()
                self.load(resp.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
            # Cached keys stay valid; only a never-seen kid fails until auth answers again.
            log.warning("JWKS fetch from %s failed: %s", self.jwks_url, type(exc).__name__)

    async def key_for(self, kid: str) -> Any | None:
        now = time.monotonic()
        omitted_at = self._omitted.get(kid)
        if omitted_at is not None and now - omitted_at >= self.retain_s:
            # Retired by auth: forgotten, so from now on it is an unknown kid (refetched at most once per interval).
            self._keys.pop(kid, None)
            del self._omitted[kid]
        stale = now - self._fetched_at > self.max_age_s
        # An unknown kid takes the lock even when no fetch is due: a fetch in flight (the first one
        # after start-up, or one after a rotation) may be about to bring it, so wait for it.
        if kid not in self._keys or (stale and now - self._attempted_at >= self.min_refresh_s):
            async with self._lock:
                if (kid not in self._keys or stale) and time.monotonic() - self._attempted_at >= self.min_refresh_s:
                    await self.refresh()
        return self._keys.get(kid)


class TokenVerifier:
    def __init__(self, jwks: KeySource, *, issuer: str, audience: str, leeway_s: float = 30.0) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("Invalid token", "malformed") from None
        # Refuse before any key lookup: `none`, HS256-with-the-public-key and friends die here.
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenRejected("Invalid token", "alg_not_allowed", alg=str(alg)[:16])
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("Invalid token", "missing_kid")
        key = await self.jwks.key_for(kid)
        if key is None:
            raise TokenRejected("Invalid token", "unknown_kid")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("Token expired", "expired", user_id=_signed_subject(token)) from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("Invalid token", "bad_signature") from None
        except jwt.PyJWTError as exc:
            for kind, reason in _CLAIM_ERRORS:
                if isinstance(exc, kind):
                    raise TokenRejected("Invalid token", reason, user_id=_signed_subject(token)) from None
            raise TokenRejected("Invalid token", "malformed") from None
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise TokenRejected("Invalid token", "invalid_subject") from None
        email = claims.get("email")
        return Principal(user_id=user_id, email=email if isinstance(email, str) else None)


def jwks_document(public_keys: dict[str, Any]) -> dict[str, Any]:
    """JWKS for {kid: RSA public key}."""
    keys = []
    for kid, key in public_keys.items():
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
        jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
        keys.append(jwk)
    return {"keys": keys}


# auto_error=False: a missing header must give our envelope, not FastAPI's {"detail"}.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def current_principal(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    if not token:
        raise UnauthorizedError()
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.verify(token)
    except TokenRejected as exc:
        details: dict[str, Any] = {"reason": exc.reason}
        if exc.alg is not None:
            details["alg"] = exc.alg
        audit.emit_for_request(request, audit.TOKEN_REJECTED, user_id=exc.user_id, **details)
        raise
    request.state.principal = principal  # who is asking, for the audit of refusals (errors.py)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
