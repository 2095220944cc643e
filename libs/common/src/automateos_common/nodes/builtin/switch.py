"""`switch`: take the output of the first case whose condition is true, else `default`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic import ValidationError as PydanticValidationError

from ..base import Node, NodeConfig, NodeContext, NodeResult
from ..conditions import condition_issues, evaluate_bool

DEFAULT_OUTPUT = "default"
MAX_CASES = 50


def _not_default(name: str) -> str:
    if name == DEFAULT_OUTPUT:
        raise ValueError(f"'{DEFAULT_OUTPUT}' is the output taken when no case matches; name the case otherwise")
    return name


class SwitchCase(NodeConfig):
    name: Annotated[str, AfterValidator(_not_default)] = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The output this case takes: 1-64 letters, digits, '_' and '-' (not 'default').",
    )
    condition: str = Field(min_length=1, description="CEL expression; {{...}} references are bound as values.")


class SwitchConfig(NodeConfig):
    cases: list[SwitchCase] = Field(
        min_length=1, max_length=MAX_CASES,
        description="Checked in order; the first whose condition is true names the output taken.",
    )
    # One mode only, so that a step takes exactly one output; kept as a field for later modes.
    mode: Literal["first"] = Field(default="first", description="first: the first matching case wins.")


class SwitchNode(Node):
    type = "switch"
    inline = True
    title = "Switch"
    description = ("Evaluates each case's condition in order and continues on the output named by the first "
                   "that is true, or on 'default' when none is; the other outputs' nodes are skipped.")
    Config = SwitchConfig
    raw_fields = frozenset({"cases"})

    @classmethod
    def output_names(cls, config: dict[str, Any]) -> tuple[str, ...]:
        try:
            cases = SwitchConfig.model_validate(config).cases
        except PydanticValidationError:  # reported by the schema check; connections get the default only
            cases = []
        return (*(c.name for c in cases), DEFAULT_OUTPUT)

    def check(self, config: SwitchConfig) -> list[tuple[str, str]]:  # type: ignore[override]
        issues: list[tuple[str, str]] = []
        first: dict[str, int] = {}
        for i, case in enumerate(config.cases):
            if case.name in first:
                issues.append((f"cases[{i}].name",
                               f"duplicate case name '{case.name}' (also cases[{first[case.name]}])"))
            else:
                first[case.name] = i
            issues += condition_issues(case.condition, f"cases[{i}].condition")
        return issues

    def run(self, ctx: NodeContext, config: SwitchConfig, input: Any) -> NodeResult:
        for i, case in enumerate(config.cases):
            if evaluate_bool(case.condition, ctx.scope, ctx.outputs, what=f"case '{case.name}' (cases[{i}]): "):
                return NodeResult(output=input, branch=case.name, note=f"matched case '{case.name}'")
        return NodeResult(output=input, branch=DEFAULT_OUTPUT, note="no case matched; took 'default'")
