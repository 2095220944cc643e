"""The `merge` node: joins the outputs of the branches that ran."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from libs.common.tests.factories import node_context
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError
from automateos_common.nodes.builtin.merge import MergeConfig, MergeNode, deep_merge
from automateos_common.nodes.definition import validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def run_merge(mode: str | None, inputs: dict[str, Any]) -> Any:
    config = validated_config(MergeNode, {} if mode is None else {"mode": mode}, resolved=True)
    ctx = dataclasses.replace(node_context(node_id="join"), inputs=inputs)
    node_input = next(iter(inputs.values())) if len(inputs) == 1 else dict(inputs)
    return MergeNode().run(ctx, config, node_input)


INPUTS = {"b": {"id": 2}, "a": {"id": 1}}  # connection order, not alphabetical


def test_object_is_the_default() -> None:
    assert run_merge(None, INPUTS) == {"b": {"id": 2}, "a": {"id": 1}}
    assert list(run_merge("object", INPUTS)) == ["b", "a"]


def test_array_keeps_connection_order() -> None:
    assert run_merge("array", INPUTS) == [{"id": 2}, {"id": 1}]
    assert run_merge("array", {"x": None, "y": [1]}) == [None, [1]]


def test_append_concatenates_lists_and_adds_anything_else() -> None:
    inputs = {"a": [1, 2], "b": {"k": 1}, "c": [], "d": [[3]], "e": None, "f": "s"}
    assert run_merge("append", inputs) == [1, 2, {"k": 1}, [3], None, "s"]


def test_deep_merges_objects_later_wins() -> None:
    inputs = {
        "a": {"user": {"id": 1, "name": "A", "tags": ["x"]}, "keep": True, "over": {"deep": 1}},
        "b": {"user": {"name": "B", "tags": ["y"], "address": {"city": "C"}}, "over": "flat"},
        "c": {"user": {"address": {"zip": "1"}}},
    }
    merged = run_merge("deep", inputs)
    assert merged == {"user": {"id": 1, "name": "B", "tags": ["y"], "address": {"city": "C", "zip": "1"}},
                      "keep": True, "over": "flat"}
    assert inputs["a"] == {"user": {"id": 1, "name": "A", "tags": ["x"]}, "keep": True, "over": {"deep": 1}}
    assert inputs["b"]["user"]["address"] == {"city": "C"}  # inputs are not changed


@pytest.mark.parametrize(("value", "shown"), [([1], "a list"), (None, "null"), ("s", "a string"), (3, "a number"),
                                              (True, "a boolean")])
def test_deep_refuses_a_non_object_naming_its_source(value: Any, shown: str) -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_merge("deep", {"a": {"x": 1}, "fetch-2": value})
    assert excinfo.value.message == f"deep merge joins objects, but the output of 'fetch-2' is {shown}"
    assert excinfo.value.retryable is False


@pytest.mark.parametrize(("mode", "empty"), [("object", {}), ("array", []), ("append", []), ("deep", {})])
def test_no_branch_ran(mode: str, empty: Any) -> None:
    assert run_merge(mode, {}) == empty


def test_a_skipped_branch_contributes_nothing() -> None:
    # The engine leaves a branch that was not taken out of ctx.inputs.
    assert run_merge("array", {"only": {"ran": True}}) == [{"ran": True}]


def test_deep_merge_helper() -> None:
    assert deep_merge({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}
    assert deep_merge({"a": 1}, {"a": {"c": 2}}) == {"a": {"c": 2}}


def test_config() -> None:
    assert MergeConfig.model_validate({}).mode == "object"
    with pytest.raises(PydanticValidationError) as excinfo:
        MergeConfig.model_validate({"mode": "zip", "wait": True})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [
        (("mode",), "literal_error"), (("wait",), "extra_forbidden"),
    ]
    assert MergeConfig.model_json_schema()["properties"]["mode"]["enum"] == ["object", "array", "append", "deep"]
    assert MergeNode.description.startswith("Waits for every inbound branch to finish or be skipped")


def test_after_an_if_in_a_definition(registry: NodeRegistry) -> None:
    definition = {
        "nodes": [{"id": "t", "type": "webhook"}, {"id": "check", "type": "if", "config": {"condition": "true"}},
                  {"id": "yes", "type": "transform", "config": {"value": 1}},
                  {"id": "no", "type": "transform", "config": {"value": 2}},
                  {"id": "join", "type": "merge", "config": {"mode": "array"}}],
        "connections": [{"from": "t", "to": "check"}, {"from": "check", "output": "true", "to": "yes"},
                        {"from": "check", "output": "false", "to": "no"}, {"from": "yes", "to": "join"},
                        {"from": "no", "to": "join"}],
    }
    plan = validate_definition(definition, registry)
    assert plan.by_id()["join"].predecessors == ["yes", "no"]
    assert plan.nodes[-1].id == "join"
