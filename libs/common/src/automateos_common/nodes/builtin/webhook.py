"""`webhook`: the trigger that starts a run when its webhook URL receives a request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from ...credentials import CredentialRef, HeaderName
from ...ratelimits import parse_limits
from ..base import Node, NodeConfig, NodeContext


class NoAuth(NodeConfig):
    type: Literal["none"] = "none"


class HeaderTokenAuth(NodeConfig):
    """A shared token in a header, compared in constant time (the header is dropped from `trigger.headers`)."""

    type: Literal["header"]
    credential: CredentialRef = Field(description="A `webhook_secret` credential of the owner, by id or name.")
    header: HeaderName = Field(default="X-Webhook-Token", description="The header carrying the token.")


class BasicAuth(NodeConfig):
    """HTTP Basic authentication against a `basic` credential."""

    type: Literal["basic"]
    credential: CredentialRef = Field(description="A `basic` credential of the owner, by id or name.")
    realm: Annotated[str, StringConstraints(pattern=r'^[^"\\\x00-\x1f\x7f]{1,100}$')] = Field(
        default="AutomateOS", description="The realm named in the 401's `WWW-Authenticate`.")


class HmacAuth(NodeConfig):
    """An HMAC-SHA256 signature of the raw body (GitHub style), or of `{t}.{body}` (Stripe style)."""

    type: Literal["hmac"]
    credential: CredentialRef = Field(description="A `webhook_secret` credential of the owner, by id or name.")
    header: HeaderName = Field(default="X-Hub-Signature-256", description="The header carrying the signature.")
    prefix: Annotated[str, StringConstraints(max_length=50, pattern=r"^[!-~]*$")] = Field(
        default="sha256=", description="Text before the signature in the header (plain format).")
    encoding: Literal["hex", "base64"] = Field(default="hex", description="How the signature is written.")
    format: Literal["plain", "stripe"] = Field(
        default="plain", description="plain: the header is prefix + signature of the body; stripe: "
                                     "`t=<unix time>,v1=<signature>[,v1=...]`, the signed text `{t}.{body}`.")
    tolerance_s: int = Field(default=300, ge=1, le=86_400,
                             description="stripe: the largest age (either way) of `t` accepted, in seconds.")


WebhookAuth = Annotated[NoAuth | HeaderTokenAuth | BasicAuth | HmacAuth, Field(discriminator="type")]
# Which credential types each kind of authentication takes (checked when a workflow is saved, and again
# by the ingress, which fails closed on anything else).
AUTH_CREDENTIAL_TYPES: dict[str, tuple[str, ...]] = {
    "header": ("webhook_secret",), "basic": ("basic",), "hmac": ("webhook_secret",),
}


class DedupConfig(NodeConfig):
    """Deliveries carrying the same key in `header` within `window_s` start one run."""

    enabled: bool = True
    header: HeaderName = Field(default="Idempotency-Key", description="The header whose value identifies a "
                                                                      "delivery (e.g. `X-GitHub-Delivery`).")
    window_s: int = Field(default=86_400, ge=1, le=30 * 86_400,
                          description="How long a key is remembered, in seconds (24 h by default).")


class WebhookConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    auth: WebhookAuth = Field(default_factory=NoAuth, description="How a request proves it comes from the "
                                                                  "sender (401 and no run otherwise).")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Deduplication of deliveries; "
                                                                        "`false` turns it off.")

    @field_validator("dedup", mode="before")
    @classmethod
    def _dedup_flag(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    rate_limit: str | None = Field(
        default=None, max_length=200,
        description="Webhooks this workflow accepts, all senders together, in the `limits` notation: "
                    "`100/second`, `10 per 2 seconds`, several joined by `;`. Above it: 429 RATE_LIMITED "
                    "with Retry-After, nothing started. Unset: no limit.",
        examples=["100/second", "10/second;1000/hour"],
    )

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parse_limits(v)
        return v.strip()


class WebhookNode(Node):
    type = "webhook"
    inline = True
    kind = "trigger"
    title = "Webhook"
    description = "Starts the workflow when its webhook URL is called; outputs payload, headers, query, method."
    Config = WebhookConfig

    @classmethod
    def webhook_method(cls, config: dict[str, Any]) -> str | None:
        return WebhookConfig.model_validate(config).method

    @classmethod
    def webhook_options(cls, config: dict[str, Any]) -> dict[str, Any]:
        c = WebhookConfig.model_validate(config)
        options: dict[str, Any] = {}
        # One line per feature. Only what differs from the ingress's defaults: a trigger that uses no
        # feature keeps the short hook entry. Credentials by reference only (the entry sits in Redis).
        if c.auth.type != "none":
            options["auth"] = c.auth.model_dump(mode="json")
        if c.dedup != DedupConfig():
            options["dedup"] = c.dedup.model_dump(mode="json")
        if c.rate_limit:
            options["rate_limit"] = c.rate_limit
        return options

    def run(self, ctx: NodeContext, config: WebhookConfig, input: Any) -> Any:
        return dict(ctx.trigger)
