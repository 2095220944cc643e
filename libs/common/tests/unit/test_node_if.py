"""The `if` node: a condition picks the `true` or the `false` output."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError, ValidationError
from automateos_common.nodes.base import NodeResult
from automateos_common.nodes.builtin.if_node import IfConfig, IfNode
from automateos_common.nodes.definition import Edge, validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry

ACTION_OUTPUT = {"status": 200, "body": {"items": [1, 2]}}


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def run_if(condition: str, node_input: Any = ACTION_OUTPUT) -> NodeResult:
    config = validated_config(IfNode, {"condition": condition}, resolved=True)
    outputs = {"action-1": ACTION_OUTPUT}
    trigger = trigger_data({"amount": 150})
    ctx = node_context(trigger=trigger, scope={**outputs, "trigger": trigger, "input": node_input},
                       outputs=outputs, node_id="if-1")
    return IfNode().run(ctx, config, node_input)


def definition(condition: str = "{{t.payload.amount}} > 100") -> dict[str, Any]:
    return {
        "nodes": [{"id": "t", "type": "webhook"}, {"id": "check", "type": "if", "config": {"condition": condition}},
                  {"id": "big", "type": "transform", "config": {"value": "big"}},
                  {"id": "small", "type": "transform", "config": {"value": "small"}}],
        "connections": [{"from": "t", "to": "check"}, {"from": "check", "output": "true", "to": "big"},
                        {"from": "check", "output": "false", "to": "small"}],
    }


@pytest.mark.parametrize(("condition", "branch"), [
    ("{{action-1.status}} == 200", "true"),
    ("{{action-1.status}} == 404", "false"),
    ("input.body.items.size() == 2 && trigger.payload.amount > 100", "true"),
    ("nodes['action-1'].body.items.size() > 5", "false"),
])
def test_the_condition_picks_the_branch(condition: str, branch: str) -> None:
    assert run_if(condition) == NodeResult(output=ACTION_OUTPUT, branch=branch, note=f"condition {branch}")


def test_the_output_is_the_input_unchanged() -> None:
    node_input = {"anything": [1, {"x": None}]}
    assert run_if("true", node_input).output is node_input
    assert run_if("false", node_input).output is node_input


@pytest.mark.parametrize(("condition", "shown"), [
    ("{{action-1.status}}", "int: 200"),
    ("'yes'", "str: 'yes'"),
    ("{{action-1.body.missing}}", "NoneType: None"),
])
def test_a_non_boolean_result_fails_the_step(condition: str, shown: str) -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_if(condition)
    assert excinfo.value.message == f"condition must be true or false, got {shown}"
    assert (excinfo.value.retryable, excinfo.value.kind) == (False, None)


def test_an_evaluation_error_fails_the_step() -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_if("nope == 1")
    assert excinfo.value.message.startswith("condition 'nope == 1' failed: Undefined variable")
    assert excinfo.value.retryable is False


def test_output_names_and_raw_fields() -> None:
    assert IfNode.output_names({"condition": "true"}) == ("true", "false")
    assert IfNode.raw_fields == frozenset({"condition"})
    assert IfNode.kind == "action"
    assert IfNode.body_output is None


def test_config() -> None:
    assert IfConfig.model_validate({"condition": "{{a.b}} == 1"}).condition == "{{a.b}} == 1"
    with pytest.raises(PydanticValidationError) as excinfo:
        IfConfig.model_validate({"condition": "", "else": 1})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [
        (("condition",), "string_too_short"), (("else",), "extra_forbidden"),
    ]
    assert IfConfig.model_json_schema()["required"] == ["condition"]


def test_a_valid_definition_plans_both_outputs(registry: NodeRegistry) -> None:
    plan = validate_definition(definition(), registry)
    check = plan.by_id()["check"]
    assert check.outbound == [Edge("check", "big", "true"), Edge("check", "small", "false")]
    assert [n.id for n in plan.nodes] == ["t", "check", "big", "small"]


def test_a_condition_that_does_not_compile_is_refused_at_save_time(registry: NodeRegistry) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition("{{t.payload.amount}} >"), registry)
    details = excinfo.value.details
    assert details is not None
    assert details["field"] == "definition.nodes[1].config.condition"
    assert details["issue"].startswith("not a valid CEL expression: ")
    assert len(details["errors"]) == 1


def test_a_reference_to_a_later_node_is_refused(registry: NodeRegistry) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition("{{big.x}} == 1"), registry)
    assert excinfo.value.details == {
        "field": "definition.nodes[1].config.condition",
        "issue": "'{{big.x}}' refers to node 'big', which does not run before 'check'",
        "errors": [{"field": "definition.nodes[1].config.condition",
                    "issue": "'{{big.x}}' refers to node 'big', which does not run before 'check'"}],
    }
