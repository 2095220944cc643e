"""`webhook`: the trigger that starts a run when its webhook URL receives a request."""

from __future__ import annotations

from typing import Any, Literal

from ..base import Node, NodeConfig, NodeContext


class WebhookConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"


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

    def run(self, ctx: NodeContext, config: WebhookConfig, input: Any) -> Any:
        return dict(ctx.trigger)
