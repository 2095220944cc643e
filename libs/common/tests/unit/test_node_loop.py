"""The `loop` node: hands its items to the engine, then collects the body's results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError, ValidationError
from automateos_common.nodes.base import NodeResult
from automateos_common.nodes.builtin.loop import LoopConfig, LoopNode, loop_max_items
from automateos_common.nodes.definition import validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.nodes.templates import resolve


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


@pytest.fixture
def max_items(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set AUTOMATEOS_LOOP_MAX_ITEMS with monkeypatch.setenv; the cached value is dropped around the test."""
    monkeypatch.delenv("AUTOMATEOS_LOOP_MAX_ITEMS", raising=False)
    loop_max_items.cache_clear()
    yield monkeypatch
    loop_max_items.cache_clear()


def run_loop(saved: dict[str, Any], payload: Any = None) -> NodeResult:
    """As the engine does: resolve the saved config, validate it, run."""
    trigger = trigger_data(payload)
    scope = {"trigger": trigger, "input": trigger}
    config = validated_config(LoopNode, resolve(saved, scope), resolved=True)
    return LoopNode().run(node_context(trigger=trigger, scope=scope, node_id="each-order"), config, trigger)


def test_run_hands_the_items_to_the_engine() -> None:
    orders = [{"id": 1}, {"id": 2}, {"id": 3}]
    result = run_loop({"items": "{{trigger.payload.orders}}", "concurrency": 2}, {"orders": orders})
    assert result == NodeResult(output=None, iterate=orders, concurrency=2, note="3 items, 2 at a time")


def test_literal_items_and_the_default_concurrency() -> None:
    assert run_loop({"items": [1, "{{trigger.payload.x}}"]}, {"x": "two"}) == NodeResult(
        output=None, iterate=[1, "two"], concurrency=1, note="2 items, 1 at a time")
    assert run_loop({"items": []}).iterate == []


@pytest.mark.parametrize(("payload", "shown"), [
    ({"orders": {"a": 1}}, "dict: {'a': 1}"),
    ({"orders": "abc"}, "str: 'abc'"),
    ({"orders": 3}, "int: 3"),
    ({}, "NoneType: None"),
])
def test_items_that_do_not_resolve_to_a_list(payload: Any, shown: str) -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_loop({"items": "{{trigger.payload.orders}}"}, payload)
    assert excinfo.value.message == f"items must be a list, got {shown}"
    assert excinfo.value.retryable is False


def test_the_item_limit(max_items: pytest.MonkeyPatch) -> None:
    assert loop_max_items() == 1000
    loop_max_items.cache_clear()
    max_items.setenv("AUTOMATEOS_LOOP_MAX_ITEMS", "3")
    assert run_loop({"items": [1, 2, 3]}).iterate == [1, 2, 3]
    with pytest.raises(NodeExecutionError) as excinfo:
        run_loop({"items": [1, 2, 3, 4]})
    assert excinfo.value.message == "loop over 4 items; the limit is 3 (AUTOMATEOS_LOOP_MAX_ITEMS)"
    assert excinfo.value.retryable is False


def test_collect_outputs_count_and_results_on_done() -> None:
    config = LoopConfig.model_validate({"items": [1, 2]}, context={"resolved": True})
    result = LoopNode().collect(config, ["a", "b"], [{"r": 1}, None])
    assert result == NodeResult(output={"count": 2, "results": [{"r": 1}, None]}, branch="done", note="2 items")
    assert LoopNode().collect(config, ["a"], ["x"]).note == "1 item"
    assert LoopNode().collect(config, [], []).output == {"count": 0, "results": []}


def test_outputs() -> None:
    assert LoopNode.body_output == "each"
    assert LoopNode.output_names({"items": []}) == ("each", "done")


@pytest.mark.parametrize("items", [[], [1, {"a": 2}], "{{trigger.payload.orders}}", "{{fetch.body.items}}"])
def test_config_accepts_a_list_or_a_reference(items: Any) -> None:
    assert LoopConfig.model_validate({"items": items}).items == items


@pytest.mark.parametrize(("config", "errors"), [
    ({}, [(("items",), "missing")]),
    ({"items": "orders"}, [(("items",), "value_error")]),
    ({"items": {"a": 1}}, [(("items",), "value_error")]),
    ({"items": None}, [(("items",), "value_error")]),
    ({"items": [], "concurrency": 0}, [(("concurrency",), "greater_than_equal")]),
    ({"items": [], "concurrency": 33}, [(("concurrency",), "less_than_equal")]),
    ({"items": [], "parallel": 2}, [(("parallel",), "extra_forbidden")]),
])
def test_config_errors(config: dict[str, Any], errors: list[tuple[tuple[str, ...], str]]) -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        LoopConfig.model_validate(config)
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == errors


def test_config_schema() -> None:
    schema = LoopConfig.model_json_schema()
    assert schema["required"] == ["items"]
    assert schema["properties"]["items"]["type"] == "array"
    assert (schema["properties"]["concurrency"]["minimum"], schema["properties"]["concurrency"]["maximum"]) == (1, 32)


def test_a_definition_with_a_body(registry: NodeRegistry) -> None:
    definition = {
        "nodes": [{"id": "t", "type": "webhook"},
                  {"id": "each-order", "type": "loop", "config": {"items": "{{t.payload.orders}}"}},
                  {"id": "shape", "type": "transform", "config": {"value": {"i": "{{loop.index}}"}}},
                  {"id": "after", "type": "transform", "config": {"value": "{{each-order.results}}"}}],
        "connections": [{"from": "t", "to": "each-order"}, {"from": "each-order", "output": "each", "to": "shape"},
                        {"from": "each-order", "output": "done", "to": "after"}],
    }
    plan = validate_definition(definition, registry)
    assert plan.by_id()["each-order"].body == ["shape"]

    definition["nodes"][1]["config"]["items"] = "orders"
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition, registry)
    assert excinfo.value.details is not None
    assert excinfo.value.details["errors"] == [{"field": "definition.nodes[1].config.items",
                                                "issue": "Value error, must be a list, or a {{...}} reference to one"}]
