"""`webhook`: the trigger that starts a run when its webhook URL receives a request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from ...credentials import CredentialRef, HeaderName
from ...ratelimits import parse_limits
from ..base import Node, NodeConfig, NodeContext

# The largest `response.timeout_s`: below the gateways' read timeout (60 s in deploy/nginx.conf and
# the dev gateway; tests/unit/test_sync_gateways.py holds them to it) so a sync answer always gets through.
SYNC_TIMEOUT_MAX_S = 55.0


class ResponseConfig(NodeConfig):
    """How the webhook is answered: at once (`async`), or when the run has ended (`sync`)."""

    mode: Literal["async", "sync"] = "async"
    node: str | None = Field(default=None, description="sync: the node whose output is the answer; "
                                                       "none: the run's result (the last node's output)")
    timeout_s: float = Field(default=10.0, ge=0.1, le=SYNC_TIMEOUT_MAX_S,
                             description="sync: how long to wait for the run; then 202 with its execution id")
    status_code: int = Field(default=200, ge=200, le=299, description="sync: the status of a successful answer")

    @field_validator("status_code")
    @classmethod
    def _with_body(cls, value: int) -> int:
        if value in (202, 204, 205):  # 202 is the "still running" answer; 204/205 cannot carry the output
            raise ValueError("must be a 2xx status with a body, other than 202 (200, 201, 203, 206-299)")
        return value


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
    response: ResponseConfig = Field(default_factory=ResponseConfig)


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
        if c.response.mode == "sync":  # async (the default) publishes nothing: no cost on the hot path
            options["response"] = c.response.model_dump(exclude_none=True)
        return options

    @classmethod
    def node_references(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        node = WebhookConfig.model_validate(config).response.node
        return [] if node is None else [("response.node", node)]

    def check(self, config: Any) -> list[tuple[str, str]]:
        assert isinstance(config, WebhookConfig)
        if config.response.mode == "async" and config.response.node is not None:
            return [("response.node", "only a sync response answers with a node's output; set mode to sync")]
        return []

    def run(self, ctx: NodeContext, config: WebhookConfig, input: Any) -> Any:
        return dict(ctx.trigger)
