"""`webhook`: the trigger that starts a run when its webhook URL receives a request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ...ratelimits import parse_limits
from ..base import Node, NodeConfig, NodeContext


class WebhookConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
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
        parsed = WebhookConfig.model_validate(config)
        options: dict[str, Any] = {}
        if parsed.rate_limit:
            options["rate_limit"] = parsed.rate_limit
        return options

    def run(self, ctx: NodeContext, config: WebhookConfig, input: Any) -> Any:
        return dict(ctx.trigger)
