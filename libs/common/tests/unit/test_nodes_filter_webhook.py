"""The `filter` and `webhook` built-in nodes."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError
from automateos_common.nodes.base import NodeResult
from automateos_common.nodes.builtin.filter import FilterConfig, FilterNode
from automateos_common.nodes.builtin.webhook import WebhookConfig, WebhookNode

ACTION_OUTPUT = {"status": 200, "headers": {}, "body": {"items": [1, 2]}}


def run_filter(condition: str, continue_on: bool | None = None, *, node_input: Any = ACTION_OUTPUT,
               outputs: dict[str, Any] | None = None) -> NodeResult:
    raw: dict[str, Any] = {"condition": condition}
    if continue_on is not None:
        raw["continue_on"] = continue_on
    config = FilterConfig.model_validate(raw, context={"resolved": True})
    outputs = outputs if outputs is not None else {"action-1": ACTION_OUTPUT}
    trigger = trigger_data({"amount": 150})
    ctx = node_context(trigger=trigger, scope={**outputs, "trigger": trigger, "input": node_input},
                       outputs=outputs, node_id="filter-1")
    return FilterNode().run(ctx, config, node_input)


@pytest.mark.parametrize(
    ("condition", "continue_on", "stop", "note"),
    [
        ("{{action-1.status}} == 200", None, False, "condition true; continued"),
        ("{{action-1.status}} == 404", None, True, "condition false; run stopped here"),
        ("{{action-1.status}} == 200", True, False, "condition true; continued"),
        ("{{action-1.status}} == 404", True, True, "condition false; run stopped here"),
        ("{{action-1.status}} == 404", False, False, "condition false; continued"),
        ("{{action-1.status}} == 200", False, True, "condition true; run stopped here"),
    ],
)
def test_continue_on(condition: str, continue_on: bool | None, stop: bool, note: str) -> None:
    result = run_filter(condition, continue_on)
    assert result == NodeResult(output=ACTION_OUTPUT, stop=stop, note=note)


def test_the_output_is_the_input_unchanged() -> None:
    node_input = {"anything": [1, {"x": None}]}
    assert run_filter("true", node_input=node_input).output is node_input
    assert run_filter("false", node_input=node_input).output is node_input


def test_conditions_see_input_trigger_and_nodes() -> None:
    assert run_filter("input.status == 200 && trigger.payload.amount > 100").stop is False
    assert run_filter("nodes['action-1'].body.items.size() == 3").stop is True
    assert run_filter("{{trigger.payload.amount}} > 1000").stop is True


@pytest.mark.parametrize(("condition", "shown"), [
    ("{{action-1.status}}", "int: 200"),
    ("'yes'", "str: 'yes'"),
    ("{{action-1.body.nothing}}", "NoneType: None"),
])
def test_a_non_boolean_result_fails_the_step(condition: str, shown: str) -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_filter(condition)
    assert excinfo.value.message == f"condition must be true or false, got {shown}"
    assert excinfo.value.retryable is False


def test_an_evaluation_error_fails_the_step() -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_filter("undefined_name == 1")
    assert excinfo.value.message.startswith("condition 'undefined_name == 1' failed: Undefined variable")
    assert excinfo.value.retryable is False


def test_check_reports_a_condition_that_does_not_compile() -> None:
    node = FilterNode()
    assert node.check(FilterConfig(condition="{{a.b}} == 1")) == []
    [(field, issue)] = node.check(FilterConfig(condition="1 +"))
    assert field == "condition"
    assert issue.startswith("not a valid CEL expression: ")


def test_filter_config() -> None:
    assert FilterConfig.model_validate({"condition": "true"}).continue_on is True
    with pytest.raises(PydanticValidationError) as excinfo:
        FilterConfig.model_validate({"condition": "", "continue_on": "perhaps", "else": 1})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [
        (("condition",), "string_too_short"), (("continue_on",), "bool_parsing"), (("else",), "extra_forbidden"),
    ]


def test_webhook_outputs_the_trigger_data() -> None:
    trigger = trigger_data({"order": 7}, method="PUT")
    output = WebhookNode().run(node_context(trigger=trigger), WebhookConfig(), None)
    assert output == {"payload": {"order": 7}, "headers": {"content-type": "application/json"}, "query": {},
                      "method": "PUT"}
    assert output is not trigger


def test_webhook_config() -> None:
    assert WebhookConfig.model_validate({}).method == "POST"
    with pytest.raises(PydanticValidationError):
        WebhookConfig.model_validate({"method": "TRACE"})
    assert WebhookNode.kind == "trigger"
