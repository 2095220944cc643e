"""The `manual` trigger: started from the API or the UI only; no webhook URL."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import ValidationError
from automateos_common.nodes.builtin.manual import ManualConfig, ManualNode
from automateos_common.nodes.builtin.webhook import WebhookConfig, WebhookNode
from automateos_common.nodes.definition import validate_definition
from automateos_common.nodes.registry import NodeRegistry, build_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def test_it_is_a_trigger_without_a_webhook_url() -> None:
    assert ManualNode.kind == "trigger"
    assert ManualNode.webhook_method({}) is None
    assert ManualNode.webhook_method({"default_payload": {"a": 1}}) is None


def test_it_outputs_what_the_webhook_trigger_outputs() -> None:
    trigger = trigger_data({"order": 7})
    ctx = node_context(trigger=trigger)
    output = ManualNode().run(ctx, ManualConfig(default_payload={"order": 0}), None)
    assert output == WebhookNode().run(ctx, WebhookConfig(), None)
    assert output == {"payload": {"order": 7}, "headers": {"content-type": "application/json"}, "query": {},
                      "method": "POST"}
    assert output is not trigger


@pytest.mark.parametrize("payload", [{}, [], 0, False, ""])
def test_a_given_payload_is_kept_even_when_empty(payload: Any) -> None:
    trigger = {**trigger_data(), "payload": payload}
    output = ManualNode().run(node_context(trigger=trigger), ManualConfig(default_payload={"x": 1}), None)
    assert output["payload"] == payload


def test_no_payload_means_the_default() -> None:
    trigger = {**trigger_data(), "payload": None}
    output = ManualNode().run(node_context(trigger=trigger), ManualConfig(default_payload={"x": [1]}), None)
    assert output["payload"] == {"x": [1]}
    assert trigger["payload"] is None  # the run's trigger data is not changed

    bare = ManualNode().run(node_context(trigger={"method": "POST"}), ManualConfig(default_payload="d"), None)
    assert bare == {"method": "POST", "payload": "d"}
    assert ManualNode().run(node_context(trigger=trigger), ManualConfig(), None)["payload"] is None


def test_config() -> None:
    assert ManualConfig.model_validate({}).default_payload is None
    assert ManualConfig.model_validate({"default_payload": [1, {"a": None}]}).default_payload == [1, {"a": None}]
    with pytest.raises(PydanticValidationError) as excinfo:
        ManualConfig.model_validate({"payload": 1})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [(("payload",), "extra_forbidden")]
    assert "default_payload" in ManualConfig.model_json_schema()["properties"]


def test_in_a_definition(registry: NodeRegistry) -> None:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual", "config": {"default_payload": {"n": 1}}},
                                   {"id": "shape", "type": "transform", "config": {"value": "{{start.payload.n}}"}}]
    plan = validate_definition({"nodes": nodes}, registry)
    assert (plan.trigger_id, [n.id for n in plan.nodes]) == ("start", ["start", "shape"])

    nodes.append({"id": "hook", "type": "webhook"})
    with pytest.raises(ValidationError) as excinfo:
        validate_definition({"nodes": nodes}, registry)
    assert excinfo.value.details is not None
    assert excinfo.value.details["errors"] == [
        {"field": "definition.nodes", "issue": "exactly one trigger node is required (found: start, hook)"},
    ]
