"""Conditions are CEL with references bound as variables: data never becomes code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from automateos_common.nodes.conditions import MAX_CONDITION_LENGTH, ConditionError, compile_condition


def evaluate(source: str, scope: dict[str, Any] | None = None, nodes: dict[str, Any] | None = None) -> Any:
    return compile_condition(source).evaluate(scope or {}, nodes or {})


@pytest.mark.parametrize(("status", "expected"), [(200, True), (404, False), (None, False)])
def test_the_seed_condition(status: Any, expected: bool) -> None:
    assert evaluate("{{action-1.status}} == 200", {"action-1": {"status": status}}) is expected


def test_references_become_variables_not_text() -> None:
    compiled = compile_condition("{{action-1.status}} == 200 && {{trigger.payload.kind}} == 'x'")
    assert compiled.expression == "_r0 == 200 && _r1 == 'x'"
    assert [ref.text for ref in compiled.refs] == ["action-1.status", "trigger.payload.kind"]


@pytest.mark.parametrize("injected", ["1 == 1 || true", "' || true || '", "x\") || true || (\"", "true"])
def test_an_injected_value_cannot_change_the_result(injected: str) -> None:
    scope = {"trigger": {"payload": {"name": injected}}}
    assert evaluate("{{trigger.payload.name}} == 'alice'", scope) is False
    # The value arrives as a string, whole: it is compared, never parsed.
    assert evaluate("{{trigger.payload.name}}", scope) == injected


def test_input_trigger_and_nodes_variables() -> None:
    scope = {"trigger": {"payload": {"amount": 150}}, "input": {"ok": True}}
    nodes = {"action-1": {"body": {"items": [1, 2]}}}
    assert evaluate("trigger.payload.amount > 100 && input.ok", scope) is True
    assert evaluate("{{trigger.payload.amount}} > 100 && input.ok", scope) is True
    assert evaluate("nodes['action-1'].body.items.size() == 2", scope, nodes) is True
    assert evaluate("nodes['action-1'].body.items.size() > 2", scope, nodes) is False


def test_a_missing_field_is_null() -> None:
    assert evaluate("{{action-1.nothing}} == null", {"action-1": {}}) is True


def test_non_boolean_results_are_returned_as_is() -> None:
    assert evaluate("1 + 2") == 3
    assert evaluate("'a' + 'b'") == "ab"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "condition is empty"),
        ("   ", "condition is empty"),
        ("{{a == 1", "unclosed '{{' in condition"),
        ("{{ }} == 1", "'{{}}' is not a reference (expected e.g. {{trigger.payload}})"),
        ("{{a b}} == 1", "'{{a b}}' is not a reference: unexpected ' b'"),
    ],
)
def test_bad_conditions_fail_to_compile(source: str, message: str) -> None:
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(source)
    assert str(excinfo.value) == message


@pytest.mark.parametrize("source", ["1 +", "a ==", "(1 == 1", "1 === 1", "{{a.b}} =="])
def test_syntax_errors_fail_to_compile(source: str) -> None:
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(source)
    assert str(excinfo.value).startswith("not a valid CEL expression: ")


def test_length_limit() -> None:
    longest = "1 == 1" + " " * (MAX_CONDITION_LENGTH - len("1 == 1"))
    assert evaluate(longest) is True
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(longest + " ")
    assert str(excinfo.value) == f"condition longer than {MAX_CONDITION_LENGTH} characters"


def test_undefined_variable_fails_at_evaluation() -> None:
    compiled = compile_condition("missing == 1")
    with pytest.raises(ConditionError) as excinfo:
        compiled.evaluate({}, {})
    assert str(excinfo.value).startswith("condition 'missing == 1' failed: Undefined variable or function: 'missing'")


def test_type_errors_fail_at_evaluation() -> None:
    with pytest.raises(ConditionError) as excinfo:
        evaluate("{{trigger.payload}} > 1", {"trigger": {"payload": {"a": 1}}})
    assert str(excinfo.value).startswith("condition '{{trigger.payload}} > 1' failed: ")


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {marker}')",
        "__import__('pathlib').Path('{marker}').touch()",
        "open('{marker}', 'w')",
        "input.__class__.__mro__.size() > 0 || __import__('os').system('touch {marker}') == 0",
    ],
)
def test_python_is_never_evaluated(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ConditionError):
        evaluate(template.format(marker=marker), {"input": {"a": 1}, "trigger": {}})
    assert marker.exists() is False


def test_a_reference_to_a_node_that_has_not_run_is_a_condition_error() -> None:
    cond = compile_condition("{{action-1.status}} == 200")
    with pytest.raises(ConditionError, match="'action-1', which has not run"):
        cond.evaluate({"trigger": {}}, {})


def test_only_the_scope_names_an_expression_mentions_are_handed_to_cel():
    unconvertible = {"big": object()}  # CEL cannot take this value: handing it over would fail
    cond = compile_condition("{{input.n}} > 1 && trigger.ok")
    assert cond.uses == frozenset({"trigger"})  # `input` only through the reference, bound as _r0
    assert cond.evaluate({"input": {"n": 2}, "trigger": {"ok": True}}, unconvertible) is True
    with_nodes = compile_condition("nodes['a'].status == 200 && my_nodes_flag == null || true")
    assert "nodes" in with_nodes.uses
    assert compile_condition("nodes['a'].status == 200").evaluate({}, {"a": {"status": 200}}) is True
