"""`transform`: output a JSON value built from references (`{"total": "{{a.body.sum}}"}`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..base import Node, NodeConfig, NodeContext


class TransformConfig(NodeConfig):
    value: Any = Field(
        description="Any JSON value; the {{...}} references in it are resolved, and a string that is exactly "
                    "one reference keeps the referenced value's type.",
    )


class TransformNode(Node):
    type = "transform"
    inline = True
    title = "Transform"
    description = "Outputs the JSON value it is given, with its {{...}} references resolved: reshapes data."
    Config = TransformConfig

    def run(self, ctx: NodeContext, config: TransformConfig, input: Any) -> Any:
        # The engine resolved the references before validating the config: the value is ready.
        return config.value
