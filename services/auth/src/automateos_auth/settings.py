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
    access_token_ttl_s: int = Field(default=3600, ge=60, le=86400, description="Lifetime of access tokens.")


@lru_cache(maxsize=1)
def get_settings() -> AuthSettings:
    return AuthSettings()
