"""The node registry: built-ins, entry-point plugins, duplicates, and a brand-new node type."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from automateos_common.errors import ValidationError
from automateos_common.nodes import registry as registry_module
from automateos_common.nodes.base import Node, NodeConfig, NodeContext
from automateos_common.nodes.builtin import filter as filter_module
from automateos_common.nodes.builtin import http_request as http_request_module
from automateos_common.nodes.builtin import webhook as webhook_module
from automateos_common.nodes.builtin.filter import FilterNode
from automateos_common.nodes.builtin.http_request import HttpRequestNode
from automateos_common.nodes.builtin.webhook import WebhookNode
from automateos_common.nodes.definition import validate_definition
from automateos_common.nodes.registry import (
    ENTRY_POINT_GROUP,
    DuplicateNodeType,
    NodeRegistry,
    build_registry,
    default_registry,
)


class EchoConfig(NodeConfig):
    message: str
    times: int = 1


class EchoNode(Node):
    """A node type the platform has never seen: one class, its own Config, nothing else."""

    type = "echo"
    Config = EchoConfig

    def run(self, ctx: NodeContext, config: EchoConfig, input: Any) -> Any:
        return {"echo": config.message * config.times}


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    load: Callable[[], Any]


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> list[str]:
    """Make the registry see these entry points; returns the groups it asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        asked.append(group)
        return list(eps)

    monkeypatch.setattr(registry_module, "entry_points", entry_points)
    return asked


BUILTIN_TYPES = ["delay", "filter", "http_request", "if", "loop", "manual", "merge", "schedule", "switch", "transform",
                 "webhook"]


def raise_import_error() -> Any:
    raise ImportError("No module named 'broken_plugin'")


def test_builtins_are_discovered() -> None:
    registry = build_registry(entry_points_group=None)
    assert registry.types() == BUILTIN_TYPES
    assert registry.get("webhook") is WebhookNode
    assert registry.get("http_request") is HttpRequestNode
    assert registry.get("filter") is FilterNode
    assert registry.get("email") is None
    assert "filter" in registry
    assert "email" not in registry
    assert registry.load_errors == {}


def test_node_kinds() -> None:
    registry = build_registry(entry_points_group=None)
    assert {name: registry.get(name).kind for name in registry.types()} == {  # type: ignore[union-attr]
        "delay": "action", "filter": "action", "http_request": "action", "if": "action", "loop": "action",
        "manual": "trigger", "merge": "action", "schedule": "trigger", "switch": "action", "transform": "action",
        "webhook": "trigger",
    }


def test_default_registry_is_built_once() -> None:
    assert default_registry() is default_registry()
    assert default_registry().types() == BUILTIN_TYPES


def test_a_duplicate_type_names_both_origins() -> None:
    registry = build_registry(entry_points_group=None)

    class AnotherWebhook(WebhookNode):
        pass

    with pytest.raises(DuplicateNodeType) as excinfo:
        registry.register(AnotherWebhook, "plugins/my_webhook.py")
    assert str(excinfo.value) == (
        f"node type 'webhook' is defined twice: in {webhook_module.__file__} and in plugins/my_webhook.py"
    )
    assert registry.get("webhook") is WebhookNode


def test_builtin_origins_are_their_files() -> None:
    registry = build_registry(entry_points_group=None)
    for node_cls, module in ((FilterNode, filter_module), (HttpRequestNode, http_request_module)):
        with pytest.raises(DuplicateNodeType) as excinfo:
            registry.register(node_cls, "again")
        assert str(excinfo.value) == (
            f"node type '{node_cls.type}' is defined twice: in {module.__file__} and in again"
        )


def test_entry_points_register_classes_and_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin_module = types.ModuleType("acme_nodes")

    class SlackNode(Node):
        type = "slack"

        def run(self, ctx: NodeContext, config: Any, input: Any) -> Any:
            return input

    class AbstractBase(Node):  # abstract: run() not implemented, so not a node type
        type = "abstract"

    SlackNode.__module__ = AbstractBase.__module__ = "acme_nodes"
    plugin_module.SlackNode = SlackNode  # type: ignore[attr-defined]
    plugin_module.AbstractBase = AbstractBase  # type: ignore[attr-defined]
    plugin_module.Imported = WebhookNode  # type: ignore[attr-defined]  # imported, not defined here
    asked = fake_entry_points(
        monkeypatch,
        FakeEntryPoint("echo", "acme.echo:EchoNode", lambda: EchoNode),
        FakeEntryPoint("acme", "acme_nodes", lambda: plugin_module),
    )

    registry = build_registry()

    assert asked == [ENTRY_POINT_GROUP]
    assert registry.types() == sorted([*BUILTIN_TYPES, "echo", "slack"])
    assert registry.get("echo") is EchoNode
    assert registry.get("slack") is SlackNode
    assert registry.load_errors == {}


def test_a_broken_plugin_is_recorded_and_skipped(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", "broken_plugin:Node", raise_import_error),
        FakeEntryPoint("echo", "acme.echo:EchoNode", lambda: EchoNode),
        FakeEntryPoint("not-a-node", "acme.util:helper", lambda: len),
        FakeEntryPoint("a-class", "acme.util:Thing", lambda: ValueError),
    )
    with caplog.at_level(logging.ERROR, logger=registry_module.__name__):
        registry = build_registry()

    assert registry.types() == sorted([*BUILTIN_TYPES, "echo"])
    assert registry.load_errors == {
        "broken": "ImportError: No module named 'broken_plugin'",
        "not-a-node": "not a Node subclass or a module",
        "a-class": "not a Node subclass or a module",
    }
    assert [r.getMessage() for r in caplog.records] == [
        "node plugin entry point 'broken' (broken_plugin:Node) failed to load: No module named 'broken_plugin'",
        "node plugin entry point 'not-a-node' (acme.util:helper) is not a Node subclass or a module",
        "node plugin entry point 'a-class' (acme.util:Thing) is not a Node subclass or a module",
    ]


def test_a_plugin_that_redefines_a_builtin_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    class MyFilter(FilterNode):
        pass

    fake_entry_points(monkeypatch, FakeEntryPoint("myfilter", "acme:MyFilter", lambda: MyFilter))
    with pytest.raises(DuplicateNodeType) as excinfo:
        build_registry()
    assert str(excinfo.value) == (
        f"node type 'filter' is defined twice: in {filter_module.__file__} "
        "and in entry point 'myfilter' (acme:MyFilter)"
    )


def test_entry_points_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_entry_points(monkeypatch, FakeEntryPoint("echo", "acme.echo:EchoNode", lambda: EchoNode))
    assert build_registry(entry_points_group=None).types() == BUILTIN_TYPES
    assert asked == []


# Adding a node type touches no core code: a registry that knows it validates it like a built-in.

def echo_definition(config: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook"}, {"id": "say", "type": "echo", "config": config},
                      {"id": "check", "type": "filter", "config": {"condition": "{{say.echo}} == 'hihi'"}}]}


def with_echo() -> NodeRegistry:
    registry = build_registry(entry_points_group=None)
    registry.register(EchoNode, "tests")
    return registry


def test_a_new_node_type_validates_through_its_own_config() -> None:
    plan = validate_definition(echo_definition({"message": "{{trigger.payload.text}}", "times": 2}), with_echo())
    assert [(n.id, n.cls) for n in plan.nodes] == [("t", WebhookNode), ("say", EchoNode), ("check", FilterNode)]


def test_a_new_node_types_config_errors_point_at_its_fields() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(echo_definition({"times": "many", "color": "red"}), with_echo())
    assert excinfo.value.details == {
        "field": "definition.nodes[1].config.message",
        "issue": "Field required",
        "errors": [
            {"field": "definition.nodes[1].config.message", "issue": "Field required"},
            {"field": "definition.nodes[1].config.times",
             "issue": "Input should be a valid integer, unable to parse string as an integer"},
            {"field": "definition.nodes[1].config.color", "issue": "Extra inputs are not permitted"},
        ],
    }


def test_the_default_registry_refuses_the_unknown_type() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(echo_definition({"message": "hi"}), build_registry())
    assert excinfo.value.details == {
        "field": "definition.nodes[1].type",
        "issue": f"unknown node type 'echo'; known: {', '.join(BUILTIN_TYPES)}",
        "errors": [{"field": "definition.nodes[1].type",
                    "issue": f"unknown node type 'echo'; known: {', '.join(BUILTIN_TYPES)}"}],
    }


def test_every_builtin_describes_itself() -> None:
    # The node-types catalog shows these; a config schema that cannot render breaks the whole list.
    registry = build_registry(entry_points_group=None)
    for name in registry.types():
        cls = registry.get(name)
        assert cls is not None
        assert cls.title and cls.description, name
        schema = cls.Config.model_json_schema()
        assert (schema["type"], schema["additionalProperties"]) == ("object", False), name
