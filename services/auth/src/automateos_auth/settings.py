from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr

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

    def key_grace_s(self) -> int:
        return self.auth_key_grace_s if self.auth_key_grace_s is not None else self.access_token_ttl_s + 300


@lru_cache(maxsize=1)
def get_settings() -> AuthSettings:
    return AuthSettings()
