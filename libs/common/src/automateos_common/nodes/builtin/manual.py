"""`manual`: the trigger of a workflow started from the API or the UI (`POST .../execute`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..base import Node, NodeConfig, NodeContext


class ManualConfig(NodeConfig):
    default_payload: Any = Field(
        default=None, description="Any JSON value; the payload when a run is started without one (null).",
    )


class ManualNode(Node):
    type = "manual"
    inline = True
    kind = "trigger"
    title = "Manual"
    description = ("Starts the workflow only when it is executed from the API or the UI (no webhook URL); "
                   "outputs payload, headers, query, method like the webhook trigger.")
    Config = ManualConfig

    # webhook_method stays None (Node's): the catalog gives this workflow no webhook URL.

    def run(self, ctx: NodeContext, config: ManualConfig, input: Any) -> Any:
        # The webhook trigger's shape, so `{{<trigger id>.payload...}}` reads the same whichever trigger it is.
        data = dict(ctx.trigger)
        if data.get("payload") is None:
            data["payload"] = config.default_payload
        return data
