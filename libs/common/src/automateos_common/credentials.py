"""Credential types: each one's fields (which are secret), and how a request carries it.

The workflows service validates and seals credentials with these schemas; the engine applies a
credential it has opened to an outgoing request (`apply`). A node names a credential by id or by
name (`"credential": "github"`), never by value.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

REDACTED = "<redacted>"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
HINT_MIN_LENGTH = 12  # shorter values get no hint: 4 characters of 8 would be half the value
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]
# No control characters: values go into header lines (a CR/LF would split one), and httpx's error for
# an invalid header value quotes it.
SecretText = Annotated[str, StringConstraints(min_length=1, max_length=8192, pattern=r"^[^\x00-\x1f\x7f]+$")]
# Names the user may reference a credential by in a node's config: its id, or its name.
CredentialRef = int | Annotated[str, StringConstraints(min_length=1, max_length=100)]


class CredentialData(BaseModel):
    """A type's fields; `secret_fields` are sealed and never shown, the others are shown as they are."""

    model_config = ConfigDict(extra="forbid")
    secret_fields: ClassVar[tuple[str, ...]]
    hint_field: ClassVar[str]  # the secret whose last 4 characters are shown


class ApiKeyData(CredentialData):
    secret_fields = ("key",)
    hint_field = "key"
    key: SecretText
    location: Literal["header", "query"] = Field(default="header", description="Where the key goes.")
    name: HeaderName = Field(default="X-API-Key", description="The header or query parameter name.")


class BearerData(CredentialData):
    secret_fields = ("token",)
    hint_field = "token"
    token: SecretText


class BasicData(CredentialData):
    secret_fields = ("password",)
    hint_field = "password"
    username: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^:]*$")]
    password: SecretText


class HeaderData(CredentialData):
    secret_fields = ("value",)
    hint_field = "value"
    name: HeaderName
    value: SecretText


class OAuth2ClientData(CredentialData):
    secret_fields = ("client_secret",)
    hint_field = "client_secret"
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    client_secret: SecretText
    token_url: HttpUrl
    scopes: list[Annotated[str, StringConstraints(pattern=r"^[!#-\[\]-~]{1,200}$")]] = Field(
        default_factory=list, max_length=50)


class WebhookSecretData(CredentialData):
    """A secret that incoming webhooks prove they know (a `webhook` trigger's `auth`); never sent anywhere."""

    secret_fields = ("secret",)
    hint_field = "secret"
    secret: SecretText


CREDENTIAL_TYPES: dict[str, type[CredentialData]] = {
    "api_key": ApiKeyData, "bearer": BearerData, "basic": BasicData, "header": HeaderData,
    "oauth2_client": OAuth2ClientData, "webhook_secret": WebhookSecretData,
}
CredentialType = Literal["api_key", "bearer", "basic", "header", "oauth2_client", "webhook_secret"]
# Types a node may send with a request (http_request's `credential`); webhook_secret only verifies.
SENDABLE_TYPES = frozenset({"api_key", "bearer", "basic", "header", "oauth2_client"})


def split(data: CredentialData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public fields, secret fields) as JSON values."""
    values = data.model_dump(mode="json")
    secret = {k: values.pop(k) for k in data.secret_fields}
    return values, secret


def hint(value: str) -> str | None:
    """`****abcd` for a long enough value; nothing for a short one."""
    return f"****{value[-4:]}" if len(value) >= HINT_MIN_LENGTH else None


def parse_ref(ref: Any) -> int | str:
    """A node's `credential`: an int (or a string of digits) is an id, anything else a name."""
    if isinstance(ref, str) and ref.isdigit():
        return int(ref)
    if isinstance(ref, int | str):
        return ref
    raise ValueError("a credential reference is an id or a name")


@dataclass
class OpenedCredential:
    """A credential as the engine holds it while a step runs: its fields in clear (never recorded)."""

    id: int
    name: str
    type: str
    fields: dict[str, Any]
    version: int = 1

    def secret_values(self) -> list[str]:
        """Every string a request carrying this credential contains that must not reach history."""
        cls = CREDENTIAL_TYPES[self.type]
        values = [str(self.fields[k]) for k in cls.secret_fields if self.fields.get(k)]
        if self.type == "basic":
            values.append(basic_token(self.fields["username"], self.fields["password"]))
        return values


def basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Applied:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


def apply(cred: OpenedCredential, access_token: str | None = None) -> Applied:
    """The headers and query parameters a request carries for `cred` (oauth2_client: `access_token`)."""
    f, out = cred.fields, Applied()
    if cred.type == "bearer":
        out.headers["Authorization"] = f"Bearer {f['token']}"
    elif cred.type == "basic":
        out.headers["Authorization"] = f"Basic {basic_token(f['username'], f['password'])}"
    elif cred.type == "header":
        out.headers[f["name"]] = f["value"]
    elif cred.type == "api_key":
        (out.headers if f.get("location", "header") == "header" else out.query)[f["name"]] = f["key"]
    elif cred.type == "oauth2_client":
        assert access_token is not None
        out.headers["Authorization"] = f"Bearer {access_token}"
    else:  # webhook_secret (refused when the workflow is saved) or a type this version does not know
        raise ValueError(f"a {cred.type} credential cannot be sent with a request")
    return out


def redact(value: Any, secrets: list[str]) -> Any:
    """`value` with every occurrence of each secret replaced by <redacted> (strings inside JSON too)."""
    needles = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    if not needles:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for n in needles:
                if n in v:
                    v = v.replace(n, REDACTED)
            return v
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
