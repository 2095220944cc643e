"""Access-token verification (TokenVerifier + JWKSCache) against a JWKS served by MockTransport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from automateos_common import auth
from automateos_common.auth import CurrentPrincipal, JWKSCache, Principal, TokenRejected, TokenVerifier, jwks_document
from automateos_common.errors import UnauthorizedError, install_exception_handlers

JWKS_URL = "http://auth.internal/api/v1/auth/jwks.json"
ISSUER = "automateos"
AUDIENCE = "automateos-api"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_1 = new_key()
KEY_2 = new_key()
OTHER_KEY = new_key()  # never published


class JWKSServer:
    """The auth service's JWKS endpoint: publishes keys, counts fetches, can be made to fail."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        self.keys = dict(keys)
        self.fetches = 0
        self.failure: str | None = None  # None, "503" or "down"

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        if self.failure == "503":
            return httpx.Response(503, json={"error": {"code": "SERVICE_UNAVAILABLE"}})
        if self.failure == "down":
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return httpx.Response(200, json=jwks_document({kid: k.public_key() for kid, k in self.keys.items()}))

    def cache(self, **kwargs: Any) -> JWKSCache:
        return JWKSCache(JWKS_URL, transport=httpx.MockTransport(self.handler), **kwargs)


class FakeClock:
    """Stands in for the `time` module inside automateos_common.auth only."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "42", "email": "ada@example.com", "iat": now, "exp": now + 900,
                            "iss": ISSUER, "aud": AUDIENCE}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any] | None = None, *, key: rsa.RSAPrivateKey = KEY_1, kid: str | None = "k1") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload if payload is not None else claims(), key, algorithm="RS256", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign_with: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign_with(signing_input.encode()))}"


def verify(verifier: TokenVerifier, *tokens: str) -> list[Principal | str]:
    """Verify tokens in order; each gives a Principal or the UnauthorizedError message."""

    async def go() -> list[Principal | str]:
        out: list[Principal | str] = []
        for token in tokens:
            try:
                out.append(await verifier.verify(token))
            except UnauthorizedError as exc:
                out.append(exc.message)
        return out

    return asyncio.run(go())


def make_verifier(cache: JWKSCache, leeway_s: float = 30.0) -> TokenVerifier:
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, leeway_s=leeway_s)


@pytest.fixture
def server() -> JWKSServer:
    return JWKSServer({"k1": KEY_1})


@pytest.fixture
def verifier(server: JWKSServer) -> TokenVerifier:
    return make_verifier(server.cache())


def test_a_valid_token_gives_the_principal(server: JWKSServer, verifier: TokenVerifier) -> None:
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]
    assert server.fetches == 1


def test_email_is_optional(verifier: TokenVerifier) -> None:
    assert verify(verifier, sign(claims(email=None)), sign(claims(email=7))) == [
        Principal(user_id=42, email=None), Principal(user_id=42, email=None),
    ]


def test_alg_none_is_refused_before_any_key_lookup(server: JWKSServer, verifier: TokenVerifier) -> None:
    unsigned = hand_made({"alg": "none", "typ": "JWT", "kid": "k1"}, claims(), lambda _: b"")
    assert verify(verifier, unsigned) == ["Invalid token"]
    assert server.fetches == 0


def test_hs256_signed_with_the_public_key_is_refused(server: JWKSServer, verifier: TokenVerifier) -> None:
    # The classic key confusion: a verifier that trusts the header's alg would check this HMAC
    # with the (public) PEM as the secret, and accept it.
    pem = KEY_1.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = hand_made({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(sub="1"),
                       lambda data: hmac.new(pem, data, hashlib.sha256).digest())
    assert verify(verifier, forged) == ["Invalid token"]
    assert server.fetches == 0


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "HS512"])
def test_other_algorithms_are_refused(alg: str, verifier: TokenVerifier) -> None:
    token = hand_made({"alg": alg, "kid": "k1"}, claims(), lambda _: b"sig")
    assert verify(verifier, token) == ["Invalid token"]


def test_a_tampered_payload_is_refused(verifier: TokenVerifier) -> None:
    header, _, signature = sign().split(".")
    forged_payload = b64(json.dumps(claims(sub="1")).encode())
    assert verify(verifier, f"{header}.{forged_payload}.{signature}") == ["Invalid token"]


def test_a_token_signed_by_an_unpublished_key_with_a_known_kid_is_refused(verifier: TokenVerifier) -> None:
    assert verify(verifier, sign(key=OTHER_KEY, kid="k1")) == ["Invalid token"]


def test_expiry_and_leeway(verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert verify(verifier, sign(claims(exp=now - 10)), sign(claims(exp=now - 60))) == [
        Principal(user_id=42, email="ada@example.com"), "Token expired",
    ]


@pytest.mark.parametrize(
    "payload",
    [
        claims(aud="someone-else"),
        claims(iss="https://evil.example.com"),
        claims(exp=None),
        claims(sub=None),
        claims(iat=None),
        claims(aud=None),
        claims(iss=None),
        claims(sub="ada"),
        claims(sub=""),
        claims(iat=int(time.time()) + 3600),
    ],
    ids=["wrong-aud", "wrong-iss", "no-exp", "no-sub", "no-iat", "no-aud", "no-iss", "non-numeric-sub",
         "empty-sub", "issued-in-the-future"],
)
def test_bad_claims_are_refused(payload: dict[str, Any], verifier: TokenVerifier) -> None:
    assert verify(verifier, sign(payload)) == ["Invalid token"]


def test_missing_or_unknown_kid(server: JWKSServer, verifier: TokenVerifier) -> None:
    assert verify(verifier, sign(kid=None), sign(kid=""), sign(kid="k9")) == [
        "Invalid token", "Invalid token", "Invalid token",
    ]


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "Bearer x.y.z", "....."])
def test_garbage_is_refused(token: str, server: JWKSServer, verifier: TokenVerifier) -> None:
    assert verify(verifier, token) == ["Invalid token"]
    assert server.fetches == 0


def test_the_error_is_a_401_asking_for_a_bearer_token(verifier: TokenVerifier) -> None:
    async def go() -> UnauthorizedError:
        with pytest.raises(UnauthorizedError) as excinfo:
            await verifier.verify("garbage")
        return excinfo.value

    error = asyncio.run(go())
    assert (error.status_code, error.code, error.headers) == (401, "UNAUTHORIZED", {"WWW-Authenticate": "Bearer"})


# --- the JWKS cache -------------------------------------------------------------------------


def test_keys_are_fetched_once(server: JWKSServer, verifier: TokenVerifier) -> None:
    principal = Principal(user_id=42, email="ada@example.com")
    assert verify(verifier, sign(), sign(), sign()) == [principal, principal, principal]
    assert server.fetches == 1


def test_concurrent_first_requests_fetch_once(server: JWKSServer) -> None:
    async def slow_handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return server.handler(request)

    verifier = make_verifier(JWKSCache(JWKS_URL, transport=httpx.MockTransport(slow_handler)))

    async def go() -> list[Principal]:
        return await asyncio.gather(*(verifier.verify(sign()) for _ in range(10)))

    # Each waits for the one fetch in flight rather than failing for want of a key.
    assert asyncio.run(go()) == [Principal(user_id=42, email="ada@example.com")] * 10
    assert server.fetches == 1


def test_concurrent_forged_kids_fetch_once(server: JWKSServer) -> None:
    async def slow_handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return server.handler(request)

    verifier = make_verifier(JWKSCache(JWKS_URL, transport=httpx.MockTransport(slow_handler)))

    async def go() -> list[BaseException | Principal]:
        tokens = [sign(key=OTHER_KEY, kid=f"forged-{i}") for i in range(20)]
        return await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)

    results = asyncio.run(go())
    # A 401 (UnauthorizedError) that names why, for the audit.
    assert [(type(r), getattr(r, "reason", None)) for r in results] == [(TokenRejected, "unknown_kid")] * 20
    assert all(isinstance(r, UnauthorizedError) for r in results)
    assert server.fetches == 1


def test_unknown_kids_refetch_at_most_once_per_interval(server: JWKSServer, clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10))
    forged = [sign(key=OTHER_KEY, kid=f"forged-{i}") for i in range(5)]
    assert verify(verifier, *forged) == ["Invalid token"] * 5
    assert server.fetches == 1

    clock.now += 9.9
    assert verify(verifier, *forged) == ["Invalid token"] * 5
    assert server.fetches == 1

    clock.now += 0.1
    assert verify(verifier, *forged) == ["Invalid token"] * 5
    assert server.fetches == 2


def test_a_rotated_key_is_picked_up_by_a_refetch(server: JWKSServer, clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10))
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]

    server.keys = {"k2": KEY_2}  # auth rotated: the new key only
    clock.now += 10
    assert verify(verifier, sign(claims(sub="7"), key=KEY_2, kid="k2")) == [
        Principal(user_id=7, email="ada@example.com"),
    ]
    assert server.fetches == 2
    # A key we trusted stays trusted for a while when the JWKS omits it (a replica mid-rotation).
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]
    assert server.fetches == 2


def test_a_key_the_jwks_no_longer_lists_is_dropped_after_the_retain_time(server: JWKSServer,
                                                                        clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10, retain_s=300))
    old_token = sign()
    assert verify(verifier, old_token) == [Principal(user_id=42, email="ada@example.com")]
    server.keys = {"k2": KEY_2}  # the old key's grace period ended at auth
    clock.now += 10
    assert verify(verifier, sign(key=KEY_2, kid="k2"))[0] != "Invalid token"  # a refetch: k1 is now omitted
    assert server.fetches == 2
    clock.now += 299
    assert verify(verifier, old_token) == [Principal(user_id=42, email="ada@example.com")]
    clock.now += 1
    assert verify(verifier, old_token) == ["Invalid token"]  # forgotten: an unknown kid, refetched once
    assert server.fetches == 3
    assert verify(verifier, old_token) == ["Invalid token"]
    assert server.fetches == 3  # and not again within the interval


def test_a_key_listed_again_is_no_longer_due_to_be_dropped(server: JWKSServer, clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10, max_age_s=60, retain_s=300))
    assert len(verify(verifier, sign())) == 1
    server.keys = {"k2": KEY_2}  # one replica mid-rotation omits k1 ...
    clock.now += 10
    verify(verifier, sign(key=KEY_2, kid="k2"))
    server.keys = {"k1": KEY_1, "k2": KEY_2}  # ... the next fetch lists it again
    clock.now += 61
    verify(verifier, sign())
    assert server.fetches == 3
    clock.now += 1000
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]


def test_a_rotated_key_waits_for_the_refresh_interval(server: JWKSServer, clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10))
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]
    server.keys["k2"] = KEY_2
    clock.now += 5
    assert verify(verifier, sign(key=KEY_2, kid="k2")) == ["Invalid token"]
    assert server.fetches == 1


@pytest.mark.parametrize("failure", ["503", "down"])
def test_cached_keys_keep_working_while_auth_is_unreachable(failure: str, server: JWKSServer,
                                                            clock: FakeClock) -> None:
    # max_age_s=0: every verification wants a fresh JWKS, so every one meets the outage.
    verifier = make_verifier(server.cache(min_refresh_s=0, max_age_s=0))
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]

    server.failure = failure
    clock.now += 1
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]
    clock.now += 1
    assert verify(verifier, sign(key=KEY_2, kid="k2")) == ["Invalid token"]
    assert server.fetches == 3

    # Auth is back (restarted, same key plus a new one): both verify.
    server.failure = None
    server.keys["k2"] = KEY_2
    clock.now += 1
    assert verify(verifier, sign(), sign(key=KEY_2, kid="k2")) == [
        Principal(user_id=42, email="ada@example.com"), Principal(user_id=42, email="ada@example.com"),
    ]


def test_a_failed_first_fetch_refuses_and_is_retried_after_the_interval(server: JWKSServer,
                                                                        clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10))
    server.failure = "down"
    assert verify(verifier, sign(), sign()) == ["Invalid token", "Invalid token"]
    assert server.fetches == 1
    server.failure = None
    clock.now += 10
    assert verify(verifier, sign()) == [Principal(user_id=42, email="ada@example.com")]
    assert server.fetches == 2


def test_stale_keys_are_refreshed_after_max_age(server: JWKSServer, clock: FakeClock) -> None:
    verifier = make_verifier(server.cache(min_refresh_s=10, max_age_s=3600))
    assert len(verify(verifier, sign(), sign())) == 2
    clock.now += 3600
    verify(verifier, sign())
    assert server.fetches == 1
    clock.now += 1
    verify(verifier, sign())
    assert server.fetches == 2


def test_unusable_keys_in_the_jwks_are_ignored() -> None:
    def jwk(name: str, **overrides: Any) -> dict[str, Any]:
        doc = jwks_document({name: KEY_1.public_key()})["keys"][0]
        doc.update(overrides)
        return {k: v for k, v in doc.items() if v is not None}

    document = {"keys": [
        jwk("good"), jwk("bare", alg=None, use=None, key_ops=None), jwk("enc", use="enc"), jwk("hs", alg="HS256"),
        jwk("ec", kty="EC"), {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, jwk("nokid", kid=None),
    ]}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=document))
    verifier = make_verifier(JWKSCache(JWKS_URL, transport=transport))
    kids = ["good", "bare", "enc", "hs", "ec", "sym", "nokid"]
    assert verify(verifier, *(sign(kid=kid) for kid in kids)) == [
        Principal(user_id=42, email="ada@example.com"), Principal(user_id=42, email="ada@example.com"),
        "Invalid token", "Invalid token", "Invalid token", "Invalid token", "Invalid token",
    ]


def test_jwks_document_shape() -> None:
    doc = jwks_document({"k1": KEY_1.public_key(), "k2": KEY_2.public_key()})
    public_numbers = [KEY_1.public_key().public_numbers(), KEY_2.public_key().public_numbers()]
    assert doc == {"keys": [
        {"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "key_ops": ["verify"], "e": "AQAB",
         "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))}
        for kid, numbers in zip(["k1", "k2"], public_numbers, strict=True)
    ]}


# --- the FastAPI dependency -----------------------------------------------------------------


def test_current_principal_dependency(verifier: TokenVerifier) -> None:
    app = FastAPI()
    install_exception_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"user_id": principal.user_id, "email": principal.email}

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return [
                await client.get("/me"),
                await client.get("/me", headers={"Authorization": "Bearer garbage"}),
                await client.get("/me", headers={"Authorization": f"Bearer {sign()}"}),
            ]

    missing, bad, good = asyncio.run(go())
    assert (missing.status_code, missing.json()) == (401, {"error": {"code": "UNAUTHORIZED",
                                                                     "message": "Not authenticated"}})
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (bad.status_code, bad.json()) == (401, {"error": {"code": "UNAUTHORIZED", "message": "Invalid token"}})
    assert (good.status_code, good.json()) == (200, {"user_id": 42, "email": "ada@example.com"})
