"""Settings shared by every service; each service subclasses `CommonSettings`.

Nothing here is read at import time: services call their own `get_settings()`
(behind `lru_cache`) so tests can swap it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# The header that carries the internal token on service-to-service calls (automateos_common.internal).
INTERNAL_HEADER = "X-AutomateOS-Internal"

class CommonSettings(BaseSettings):
    """Configuration every service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="AUTOMATEOS_", extra="ignore", populate_by_name=True)

    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Origin written into webhook URLs (AUTOMATEOS_PUBLIC_URL).",
    )
    data_dir: Path = Field(
        default=Path(".data"),
        description="Local folder for dev state: SQLite files, generated keys, the internal token.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "AUTOMATEOS_DATABASE_URL"),
        description="SQLAlchemy URL; unset means a SQLite file per service in the data folder.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "AUTOMATEOS_REDIS_URL"),
        description="Redis URL (queue, run state, webhook token map).",
    )
    egress_allow: str = Field(
        default="",
        description="Comma-separated hosts/CIDRs node HTTP calls may reach although loopback/private/link-local.",
    )
    internal_token: SecretStr | None = Field(
        default=None,
        description="Shared secret for service-to-service calls; generated into the data folder when unset.",
    )
    auth_url: str = Field(default="http://127.0.0.1:8001", description="Internal base URL of the auth service.")
    workflows_url: str = Field(
        default="http://127.0.0.1:8002", description="Internal base URL of the workflows service."
    )
    jwt_issuer: str = Field(default="automateos", description="`iss` of access tokens.")
    jwt_audience: str = Field(default="automateos-api", description="`aud` of access tokens.")
    queue_name: str = Field(default="automateos", description="RQ queue the ingress fills and the engine drains.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    # Limits that protect the system (issue 3); a run that crosses one fails with a message naming it.
    run_max_steps: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Steps one run may execute, loop iterations included (AUTOMATEOS_RUN_MAX_STEPS).",
    )
    loop_max_items: int = Field(
        default=1000, ge=1, le=1_000_000, description="Items one loop may iterate over (AUTOMATEOS_LOOP_MAX_ITEMS).",
    )
    step_output_max_bytes: int = Field(
        default=256 * 1024, ge=1024,
        description="Largest step input/output kept in run history; bigger ones are shown as a truncation "
                    "marker (the run itself keeps the whole value) (AUTOMATEOS_STEP_OUTPUT_MAX_BYTES).",
    )

    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (scheme://host[:port]) whose browser pages may call the API "
                    "(CORS); empty: none (AUTOMATEOS_CORS_ORIGINS).",
    )
    hsts_max_age_s: int = Field(
        default=0, ge=0, le=2 * 365 * 86400,
        description="Strict-Transport-Security max-age on every response; 0: no HSTS header (set it when the "
                    "API is served over HTTPS) (AUTOMATEOS_HSTS_MAX_AGE_S).",
    )

    client_ip_header: str | None = Field(
        default=None,
        description="Request header that holds the client's address (e.g. X-Real-IP from the proxy in front, "
                    "which must overwrite it); unset: the connection's address (uvicorn applies X-Forwarded-For "
                    "from FORWARDED_ALLOW_IPS, by default 127.0.0.1: the dev gateway) (AUTOMATEOS_CLIENT_IP_HEADER).",
    )
    audit_stream_maxlen: int = Field(
        default=100_000, ge=1000, le=10_000_000,
        description="Approximate bound of the Redis stream `aos:audit` that carries security events to auth "
                    "(AUTOMATEOS_AUDIT_STREAM_MAXLEN).",
    )

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, v: str) -> str:
        for origin in cors_origin_list(v):
            if origin == "*" or not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com ('*' is not allowed)")
        return v

    def cors_allowed_origins(self) -> list[str]:
        return cors_origin_list(self.cors_origins)

    def database_url_for(self, service: str) -> str:
        """The configured URL, or a per-service SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def internal_secret(self) -> str:
        """The service-to-service secret: from the environment, else a file created on first use."""
        if self.internal_token is not None:
            return self.internal_token.get_secret_value()
        return read_or_create_secret(self.data_dir / "internal-token")

    def egress_allowlist(self) -> tuple[frozenset[str], tuple[Network, ...]]:
        """(host names, networks) from AUTOMATEOS_EGRESS_ALLOW."""
        return parse_egress_allow(self.egress_allow)


def cors_origin_list(raw: str) -> list[str]:
    return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]


def parse_egress_allow(raw: str) -> tuple[frozenset[str], tuple[Network, ...]]:
    hosts: set[str] = set()
    nets: list[Network] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return frozenset(hosts), tuple(nets)


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """Read a secret file, creating it (mode 0600, atomically) when it does not exist yet."""
    return read_or_create_file(path, lambda: secrets.token_urlsafe(nbytes))


def read_or_create_file(path: Path, make: Callable[[], str]) -> str:
    """Read a secret file, creating it with `make()` (mode 0600, atomically) when it does not exist yet."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        # O_EXCL: when several services start at once, exactly one writes the file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value
