from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator

from automateos_common.settings import CommonSettings


class AuthSettings(CommonSettings):
    auth_private_key: SecretStr | None = Field(
        default=None, description="PEM of the RSA signing key (compose: from the env file or a secret)."
    )
    auth_private_key_file: Path | None = Field(
        default=None, description="Path to the PEM signing key; unset in dev: generated into the data folder."
    )
    auth_retired_keys_dir: Path | None = Field(
        default=None,
        description="Folder of retired signing keys' public halves, still published during their grace period "
                    "(written by `python -m automateos_auth rotate-key`); unset: `retired/` next to the key file.",
    )
    auth_key_grace_s: int | None = Field(
        default=None, ge=60, le=30 * 86400,
        description="How long a rotated-out key stays in the JWKS; unset: the access-token lifetime + 300 s, so "
                    "every token it signed expires before it goes.",
    )
    access_token_ttl_s: int = Field(default=900, ge=60, le=86400, description="Lifetime of access tokens.")
    refresh_token_ttl_s: int = Field(
        default=30 * 86400, ge=300, le=365 * 86400,
        description="Lifetime of a refresh token; each refresh issues a new one with a fresh lifetime.",
    )

    # Rate limits, in the `limits` notation: "10/minute;50/hour" (every one applies).
    rate_limit_enabled: bool = Field(default=True, description="Apply the rate limits below.")
    rate_limit_storage: Literal["redis", "memory"] = Field(
        default="redis",
        description="Where attempts are counted: `redis` (REDIS_URL, shared by replicas; this process's memory "
                    "while Redis does not answer) or `memory` (this process only: dev, a single replica).",
    )
    rate_limit_register_ip: str = Field(default="10/minute;50/hour", description="Registrations per client address.")
    rate_limit_register_email: str = Field(default="5/hour", description="Registrations per email address.")
    rate_limit_token_ip: str = Field(default="30/minute;300/hour", description="Logins per client address.")
    rate_limit_token_account: str = Field(
        default="20/minute;200/hour", description="Logins per account (email), whether it exists or not.",
    )
    rate_limit_refresh_ip: str = Field(default="60/minute;1000/hour", description="Refreshes per client address.")
    rate_limit_refresh_account: str = Field(default="30/minute;500/hour", description="Refreshes per user.")
    login_slowdown_after: int = Field(
        default=5, ge=1, le=1000, description="Failed logins of an account (within the window) before the slowdown.",
    )
    login_slowdown_base_s: float = Field(
        default=0.5, gt=0, le=60, description="Wait of the first slowed attempt; doubled for each further failure.",
    )
    login_slowdown_max_s: float = Field(default=8.0, ge=0, le=60, description="Longest wait; 0 turns it off.")
    login_failure_window_s: int = Field(
        default=900, ge=1, le=86400, description="Failed logins are counted from the first one for this long; "
                                                 "a successful login clears the count.",
    )
    audit_recorder_enabled: bool = Field(
        default=True, description="Consume security events (`aos:audit`) into `security_events` in this process.",
    )

    @field_validator("rate_limit_register_ip", "rate_limit_register_email", "rate_limit_token_ip",
                     "rate_limit_token_account", "rate_limit_refresh_ip", "rate_limit_refresh_account")
    @classmethod
    def _check_limits(cls, v: str) -> str:
        try:
            items = parse_many(v)
        except ValueError:
            items = []
        if not items:
            raise ValueError(f"{v!r} is not a rate limit like '10/minute' or '10/minute;50/hour'")
        return v

    def rate_limit_rules(self) -> dict[str, str]:
        return {"register-ip": self.rate_limit_register_ip, "register-email": self.rate_limit_register_email,
                "token-ip": self.rate_limit_token_ip, "token-account": self.rate_limit_token_account,
                "refresh-ip": self.rate_limit_refresh_ip, "refresh-account": self.rate_limit_refresh_account}

    def key_grace_s(self) -> int:
        return self.auth_key_grace_s if self.auth_key_grace_s is not None else self.access_token_ttl_s + 300


@lru_cache(maxsize=1)
def get_settings() -> AuthSettings:
    return AuthSettings()
