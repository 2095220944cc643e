"""The `transform` node: outputs its (resolved) value."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import ValidationError
from automateos_common.nodes.builtin.transform import TransformConfig, TransformNode
from automateos_common.nodes.definition import validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.nodes.templates import resolve


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def run_transform(saved: dict[str, Any], scope: dict[str, Any]) -> Any:
    """As the engine does: resolve the saved config, validate it, run."""
    config = validated_config(TransformNode, resolve(saved, scope), resolved=True)
    return TransformNode().run(node_context(scope=scope), config, None)


def test_references_keep_their_types_and_text_is_rendered() -> None:
    trigger = trigger_data({"order": {"id": 7, "lines": [{"sku": "A"}]}, "paid": True})
    scope = {"trigger": trigger, "fetch": {"status": 200, "body": {"total": 12.5}}}
    saved = {"value": {"id": "{{trigger.payload.order.id}}", "lines": "{{trigger.payload.order.lines}}",
                       "paid": "{{trigger.payload.paid}}", "total": "{{fetch.body.total}}",
                       "label": "order {{trigger.payload.order.id}} ({{fetch.status}})", "missing": "{{fetch.nope}}",
                       "fixed": [1, None, False]}}
    assert run_transform(saved, scope) == {"id": 7, "lines": [{"sku": "A"}], "paid": True, "total": 12.5,
                                           "label": "order 7 (200)", "missing": None, "fixed": [1, None, False]}


@pytest.mark.parametrize("value", [None, 0, "text", [1, "two"], {"a": {"b": []}}])
def test_any_json_value(value: Any) -> None:
    assert run_transform({"value": value}, {"trigger": trigger_data()}) == value


def test_a_single_reference_outputs_the_referenced_value() -> None:
    scope = {"trigger": trigger_data({"items": [1, 2]})}
    assert run_transform({"value": "{{trigger.payload.items}}"}, scope) == [1, 2]


def test_config() -> None:
    assert TransformConfig.model_validate({"value": None}).value is None
    with pytest.raises(PydanticValidationError) as excinfo:
        TransformConfig.model_validate({"values": 1})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [
        (("value",), "missing"), (("values",), "extra_forbidden"),
    ]
    assert TransformConfig.model_json_schema()["required"] == ["value"]


def test_in_a_definition(registry: NodeRegistry) -> None:
    nodes = [{"id": "t", "type": "webhook"}, {"id": "shape", "type": "transform",
                                             "config": {"value": {"n": "{{t.payload.n}}"}}}]
    assert [n.id for n in validate_definition({"nodes": nodes}, registry).nodes] == ["t", "shape"]

    nodes[1]["config"] = {"value": {"n": "{{later.n}}"}}
    with pytest.raises(ValidationError) as excinfo:
        validate_definition({"nodes": nodes}, registry)
    assert excinfo.value.details is not None
    assert excinfo.value.details["errors"] == [{
        "field": "definition.nodes[1].config.value.n",
        "issue": "'{{later.n}}' refers to node 'later', which does not exist",
    }]

    nodes[1]["config"] = {}
    with pytest.raises(ValidationError) as excinfo:
        validate_definition({"nodes": nodes}, registry)
    assert excinfo.value.details is not None
    assert excinfo.value.details["errors"] == [{"field": "definition.nodes[1].config.value", "issue": "Field required"}]
