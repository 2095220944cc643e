"""`filter`: continue the run only when a condition matches; otherwise stop it, successfully."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..base import Node, NodeConfig, NodeContext, NodeResult
from ..conditions import condition_issues, evaluate_bool


class FilterConfig(NodeConfig):
    condition: str = Field(min_length=1, description="CEL expression; {{...}} references are bound as values.")
    continue_on: bool = Field(default=True, description="Continue when the condition evaluates to this.")


class FilterNode(Node):
    type = "filter"
    inline = True
    title = "Filter"
    description = ("Evaluates a condition; when it differs from continue_on its path stops there (successfully) "
                   "and the nodes that depend on it are skipped.")
    Config = FilterConfig
    raw_fields = frozenset({"condition"})

    def check(self, config: FilterConfig) -> list[tuple[str, str]]:  # type: ignore[override]
        return condition_issues(config.condition, "condition")

    def run(self, ctx: NodeContext, config: FilterConfig, input: Any) -> NodeResult:
        value = evaluate_bool(config.condition, ctx.scope, ctx.outputs)
        passed = value == config.continue_on
        note = f"condition {str(value).lower()}; " + ("continued" if passed else "run stopped here")
        # The data flows through unchanged, so the next node sees what this one saw.
        return NodeResult(output=input, stop=not passed, note=note)
