"""The `switch` node: the first matching case names the output taken, else `default`."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError, ValidationError
from automateos_common.nodes.base import NodeResult
from automateos_common.nodes.builtin.switch import MAX_CASES, SwitchConfig, SwitchNode
from automateos_common.nodes.definition import Edge, validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry

CASES = [
    {"name": "vip", "condition": "{{trigger.payload.amount}} >= 1000"},
    {"name": "big", "condition": "input.amount >= 100"},
    {"name": "also_big", "condition": "input.amount >= 50"},
]


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def run_switch(amount: int, cases: list[dict[str, Any]] = CASES) -> NodeResult:
    config = validated_config(SwitchNode, {"cases": cases}, resolved=True)
    trigger = trigger_data({"amount": amount})
    node_input = {"amount": amount}
    ctx = node_context(trigger=trigger, scope={"trigger": trigger, "input": node_input}, node_id="route")
    return SwitchNode().run(ctx, config, node_input)


def definition(cases: list[dict[str, Any]], connections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    names = [c.get("name") for c in cases if isinstance(c, dict)]
    targets = [*[n for n in names if isinstance(n, str)], "default"]
    nodes = [{"id": "t", "type": "webhook"}, {"id": "route", "type": "switch", "config": {"cases": cases}}]
    nodes += [{"id": f"to-{n}", "type": "transform", "config": {"value": n}} for n in dict.fromkeys(targets)]
    if connections is None:
        connections = [{"from": "t", "to": "route"}]
        connections += [{"from": "route", "output": n, "to": f"to-{n}"} for n in dict.fromkeys(targets)]
    return {"nodes": nodes, "connections": connections}


def details_of(definition: dict[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition, registry)
    assert excinfo.value.status_code == 422
    assert excinfo.value.details is not None
    return excinfo.value.details


@pytest.mark.parametrize(("amount", "branch"), [(5000, "vip"), (100, "big"), (60, "also_big")])
def test_the_first_matching_case_wins(amount: int, branch: str) -> None:
    result = run_switch(amount)
    assert result == NodeResult(output={"amount": amount}, branch=branch, note=f"matched case '{branch}'")


def test_no_match_takes_default() -> None:
    assert run_switch(1) == NodeResult(output={"amount": 1}, branch="default", note="no case matched; took 'default'")


def test_later_cases_are_not_evaluated_after_a_match() -> None:
    # The second case would fail (not a boolean); the first match returns before reaching it.
    cases = [{"name": "a", "condition": "true"}, {"name": "b", "condition": "'not a bool'"}]
    assert run_switch(1, cases).branch == "a"


def test_a_non_boolean_case_fails_the_step() -> None:
    cases = [{"name": "a", "condition": "false"}, {"name": "b", "condition": "input.amount"}]
    with pytest.raises(NodeExecutionError) as excinfo:
        run_switch(7, cases)
    assert excinfo.value.message == "case 'b' (cases[1]): condition must be true or false, got int: 7"
    assert excinfo.value.retryable is False


def test_an_evaluation_error_names_the_case() -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_switch(7, [{"name": "a", "condition": "nope > 1"}])
    assert excinfo.value.message.startswith("case 'a' (cases[0]): condition 'nope > 1' failed: Undefined variable")


def test_output_names() -> None:
    assert SwitchNode.output_names({"cases": CASES}) == ("vip", "big", "also_big", "default")
    assert SwitchNode.output_names({"cases": []}) == ("default",)
    assert SwitchNode.raw_fields == frozenset({"cases"})


def test_config_defaults_and_schema() -> None:
    config = SwitchConfig.model_validate({"cases": CASES})
    assert config.mode == "first"
    assert [c.name for c in config.cases] == ["vip", "big", "also_big"]
    schema = SwitchConfig.model_json_schema()
    assert schema["properties"]["cases"]["maxItems"] == MAX_CASES


@pytest.mark.parametrize(("config", "errors"), [
    ({}, [(("cases",), "missing")]),
    ({"cases": []}, [(("cases",), "too_short")]),
    ({"cases": [{"name": "a", "condition": "true"}] * (MAX_CASES + 1)}, [(("cases",), "too_long")]),
    ({"cases": [{"name": "", "condition": "true"}]}, [(("cases", 0, "name"), "string_pattern_mismatch")]),
    ({"cases": [{"name": "a b", "condition": "true"}]}, [(("cases", 0, "name"), "string_pattern_mismatch")]),
    ({"cases": [{"name": "x" * 65, "condition": "true"}]}, [(("cases", 0, "name"), "string_pattern_mismatch")]),
    ({"cases": [{"name": "default", "condition": "true"}]}, [(("cases", 0, "name"), "value_error")]),
    ({"cases": [{"name": "a", "condition": ""}]}, [(("cases", 0, "condition"), "string_too_short")]),
    ({"cases": [{"name": "a"}]}, [(("cases", 0, "condition"), "missing")]),
    ({"cases": [{"name": "a", "condition": "true", "when": 1}]}, [(("cases", 0, "when"), "extra_forbidden")]),
    ({"cases": [{"name": "a", "condition": "true"}], "mode": "all"}, [(("mode",), "literal_error")]),
])
def test_config_errors(config: dict[str, Any], errors: list[tuple[tuple[Any, ...], str]]) -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        SwitchConfig.model_validate(config)
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == errors


def test_a_valid_definition(registry: NodeRegistry) -> None:
    plan = validate_definition(definition(CASES), registry)
    route = plan.by_id()["route"]
    assert route.outbound == [Edge("route", f"to-{n}", n) for n in ("vip", "big", "also_big", "default")]


def test_save_time_errors_point_at_the_case(registry: NodeRegistry) -> None:
    cases = [{"name": "a", "condition": "true"}, {"name": "b", "condition": "1 +"},
             {"name": "a", "condition": "false"}, {"name": "c", "condition": "{{t.payload"}]
    details = details_of(definition(cases), registry)
    where = "definition.nodes[1].config.cases"
    assert [(e["field"], e["issue"].split(":")[0]) for e in details["errors"]] == [
        (f"{where}[1].condition", "not a valid CEL expression"),
        (f"{where}[2].name", "duplicate case name 'a' (also cases[0])"),
        (f"{where}[3].condition", "unclosed '{{' in condition"),
    ]


def test_a_case_named_default_is_refused(registry: NodeRegistry) -> None:
    details = details_of(definition([{"name": "default", "condition": "true"}]), registry)
    assert details["errors"] == [{
        "field": "definition.nodes[1].config.cases[0].name",
        "issue": "Value error, 'default' is the output taken when no case matches; name the case otherwise",
    }]


def test_a_connection_must_name_a_case_or_default(registry: NodeRegistry) -> None:
    cases = [{"name": "a", "condition": "true"}]
    d = definition(cases)
    d["connections"][1]["output"] = "b"
    details = details_of(d, registry)
    assert details["errors"] == [{"field": "definition.connections[1].output",
                                  "issue": "must name an output of 'route': a, default"}]
