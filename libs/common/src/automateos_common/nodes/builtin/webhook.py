"""`webhook`: the trigger that starts a run when its webhook URL receives a request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

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


class WebhookConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
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
        parsed = WebhookConfig.model_validate(config)
        options: dict[str, Any] = {}
        if parsed.response.mode == "sync":  # async (the default) publishes nothing: no cost on the hot path
            options["response"] = parsed.response.model_dump(exclude_none=True)
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
