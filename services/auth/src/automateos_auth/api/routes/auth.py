from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session

from automateos_common import audit
from automateos_common.errors import EmailTakenError, UnauthorizedError
from automateos_common.jsonutil import utcnow
from automateos_common.openapi import error_responses

from ... import crud, sessions
from ...keys import KeyRing
from ...models import User
from ...ratelimit import subject
from ...schemas import RefreshRequest, Token, UserPublic, UserRegister
from ...settings import AuthSettings
from ..deps import ClientIP, KeyRingDep, LimiterDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

REGISTER_ERRORS = error_responses(409, 429, descriptions={409: "This email is already registered (`EMAIL_TAKEN`)",
                                                          429: "Too many attempts (`RATE_LIMITED`); see `Retry-After`"})
UNAUTHORIZED = error_responses(401, 429, descriptions={401: "Bad credentials or refresh token (`UNAUTHORIZED`)",
                                                       429: "Too many attempts (`RATE_LIMITED`); see `Retry-After`"})
PasswordForm = Annotated[OAuth2PasswordRequestForm, Depends()]


@router.post("/register", status_code=201, response_model=UserPublic, responses=REGISTER_ERRORS)
def register(body: UserRegister, request: Request, session: SessionDep, limiter: LimiterDep,
             ip: ClientIP) -> UserPublic:
    limiter.hit("register-ip", ip)
    limiter.hit("register-email", subject(body.email))
    if crud.get_user_by_email(session=session, email=body.email) is not None:
        raise EmailTakenError()
    user = crud.create_user(session=session, email=body.email, password=body.password)
    session.commit()
    audit.emit_for_request(request, audit.USER_REGISTERED, user_id=user.id, email=user.email)
    return UserPublic.model_validate(user, from_attributes=True)


def _pair(*, session: Session, user: User, keys: KeyRing, settings: AuthSettings,
          issued: sessions.Issued | None = None) -> Token:
    assert user.id is not None
    now = utcnow()
    if issued is None:
        issued = sessions.issue(session=session, user_id=user.id, ttl_s=settings.refresh_token_ttl_s, now=now)
    access_token, ttl = keys.issue(user_id=user.id, email=user.email, settings=settings)
    return Token(access_token=access_token, expires_in=ttl, refresh_token=issued.token,
                 refresh_expires_in=settings.refresh_token_ttl_s)


async def login_gate(form: PasswordForm, limiter: LimiterDep, ip: ClientIP) -> None:
    """Before the password is checked: the rate limits, then the slowdown of an account that keeps failing.
    Awaited on the event loop: the wait holds no thread (the counting itself runs in one: it is blocking I/O)."""
    account = subject(form.username)
    await anyio.to_thread.run_sync(limiter.hit, "token-ip", ip)
    await anyio.to_thread.run_sync(limiter.hit, "token-account", account)
    delay = await anyio.to_thread.run_sync(limiter.login_delay, form.username)
    if delay > 0:
        await anyio.sleep(delay)


@router.post("/token", response_model=Token, responses=UNAUTHORIZED, dependencies=[Depends(login_gate)])
def token(form: PasswordForm, request: Request, session: SessionDep, settings: SettingsDep, keys: KeyRingDep,
          limiter: LimiterDep) -> Token:
    """Log in: an access token and the first refresh token of a new session."""
    user, known_id = crud.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        # Counted for unknown emails too: the same answer, the same slowdown, whether the email exists or not.
        limiter.login_failed(form.username)
        if known_id is not None:  # listed to the account's owner: someone tried their password
            audit.emit_for_request(request, audit.LOGIN_FAILED, user_id=known_id, reason="bad_password")
        else:  # log only, and never what was typed (it may be a password typed into the wrong field)
            audit.emit_for_request(request, audit.LOGIN_FAILED, user_id=None, reason="unknown_account",
                                   account=account_ref(request, form.username))
        raise UnauthorizedError("Incorrect email or password")
    limiter.login_succeeded(form.username)
    pair = _pair(session=session, user=user, keys=keys, settings=settings)
    session.commit()  # the refresh token, and an upgraded password hash if any
    audit.emit_for_request(request, audit.LOGIN_SUCCEEDED, user_id=user.id, email=user.email)
    return pair


def account_ref(request: Request, username: str) -> str:
    """A keyed hash of a login name that matched no account: repeated attempts at one name correlate in the
    log, but the name cannot be read back, nor guessed from a dictionary without the key."""
    key: bytes = request.app.state.audit_key
    return hmac.new(key, crud.normalize_email(username).encode(), hashlib.sha256).hexdigest()[:16]


@router.post("/refresh", response_model=Token, responses=UNAUTHORIZED)
def refresh(body: RefreshRequest, request: Request, session: SessionDep, settings: SettingsDep, keys: KeyRingDep,
            limiter: LimiterDep, ip: ClientIP) -> Token:
    """Exchange a refresh token (single use) for a new access token and refresh token. Presenting a
    refresh token that was already exchanged revokes its whole session."""
    limiter.hit("refresh-ip", ip)
    try:
        user, issued = sessions.rotate(session=session, token=body.refresh_token,
                                       ttl_s=settings.refresh_token_ttl_s, now=utcnow(),
                                       before_spend=lambda user_id: limiter.hit("refresh-account", str(user_id)))
    except sessions.RefreshRejected as exc:
        session.commit()  # a detected reuse has revoked the family
        if exc.user_id is not None:
            audit.emit_for_request(request, audit.REFRESH_TOKEN_REUSED, user_id=exc.user_id,
                                   session_id=exc.family_id, revoked=exc.revoked)
        raise UnauthorizedError(exc.message) from None
    pair = _pair(session=session, user=user, keys=keys, settings=settings, issued=issued)
    session.commit()
    return pair


@router.post("/logout", status_code=204, response_class=Response)
def logout(body: RefreshRequest, session: SessionDep) -> Response:
    """End the session the refresh token belongs to: every refresh token of it stops working.
    Access tokens already issued stay valid until they expire. Unknown tokens are 204 too."""
    sessions.logout(session=session, token=body.refresh_token, now=utcnow())
    session.commit()
    return Response(status_code=204)


@router.get("/jwks.json")
def jwks(keys: KeyRingDep) -> dict[str, Any]:
    """The public keys that verify access tokens (RS256, with `kid`): the current one, and during a
    rotation's grace period the previous one."""
    return keys.jwks()
