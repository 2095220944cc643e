"""`if`: evaluate a condition and take the `true` or the `false` output."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..base import Node, NodeConfig, NodeContext, NodeResult
from ..conditions import condition_issues, evaluate_bool

OUTPUTS = ("true", "false")


class IfConfig(NodeConfig):
    condition: str = Field(min_length=1, description="CEL expression; {{...}} references are bound as values.")


class IfNode(Node):
    type = "if"
    inline = True
    title = "If"
    description = ("Evaluates a condition and continues on its 'true' or 'false' output; the nodes only the "
                   "other output leads to are skipped. The data passes through unchanged.")
    Config = IfConfig
    raw_fields = frozenset({"condition"})

    @classmethod
    def output_names(cls, config: dict[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def check(self, config: IfConfig) -> list[tuple[str, str]]:  # type: ignore[override]
        return condition_issues(config.condition, "condition")

    def run(self, ctx: NodeContext, config: IfConfig, input: Any) -> NodeResult:
        value = evaluate_bool(config.condition, ctx.scope, ctx.outputs)
        branch = "true" if value else "false"
        return NodeResult(output=input, branch=branch, note=f"condition {branch}")
