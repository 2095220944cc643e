"""Saving a workflow: validate_definition with the default registry, errors pointing at fields."""

from __future__ import annotations

from typing import Any

import pytest
from libs.common.tests.factories import example_definition as make_example

from automateos_common.errors import ValidationError
from automateos_common.nodes.definition import MAX_NODES, Plan, ancestors, validate_definition
from automateos_common.nodes.registry import NodeRegistry, build_registry

KNOWN_TYPES = "delay, filter, http_request, if, loop, manual, merge, schedule, switch, transform, webhook"


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry()


@pytest.fixture
def example_definition() -> dict[str, Any]:
    return make_example()


def webhook(node_id: str = "t") -> dict[str, Any]:
    return {"id": node_id, "type": "webhook", "config": {"method": "POST"}}


def filter_node(node_id: str, condition: str = "true") -> dict[str, Any]:
    return {"id": node_id, "type": "filter", "config": {"condition": condition}}


def edges(*pairs: str) -> list[dict[str, str]]:
    """edges("a>b", "b>c") -> connections."""
    return [{"from": p.split(">")[0], "to": p.split(">")[1]} for p in pairs]


def errors_of(definition: Any, registry: NodeRegistry) -> ValidationError:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition, registry)
    return excinfo.value


def assert_errors(definition: Any, registry: NodeRegistry, expected: list[tuple[str, str]]) -> None:
    """The error is a 422 naming the first field, and lists exactly these (field, issue) pairs."""
    error = errors_of(definition, registry)
    assert error.status_code == 422
    assert error.code == "VALIDATION_ERROR"
    assert error.message == "Invalid workflow definition"
    items = [{"field": f, "issue": i} for f, i in expected]
    assert error.details == {"field": expected[0][0], "issue": expected[0][1], "errors": items}


def test_the_api_example_is_valid_and_ordered(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    plan = validate_definition(example_definition, registry)
    assert isinstance(plan, Plan)
    assert plan.trigger_id == "trigger-1"
    assert [(n.id, n.type, n.index, n.predecessors) for n in plan.nodes] == [
        ("trigger-1", "webhook", 0, []),
        ("action-1", "http_request", 1, ["trigger-1"]),
        ("filter-1", "filter", 2, ["action-1"]),
    ]
    assert plan.nodes[1].config == example_definition["nodes"][1]["config"]
    assert [n.cls.type for n in plan.nodes] == ["webhook", "http_request", "filter"]


def test_without_connections_nodes_run_in_list_order(example_definition: dict[str, Any],
                                                     registry: NodeRegistry) -> None:
    for empty in (None, []):
        example_definition["connections"] = empty
        plan = validate_definition(example_definition, registry)
        assert [(n.id, n.predecessors) for n in plan.nodes] == [
            ("trigger-1", []), ("action-1", ["trigger-1"]), ("filter-1", ["action-1"]),
        ]
    del example_definition["connections"]
    assert [n.id for n in validate_definition(example_definition, registry).nodes] == [
        "trigger-1", "action-1", "filter-1",
    ]


def test_topological_order_breaks_ties_by_list_position(registry: NodeRegistry) -> None:
    nodes = [webhook("t"), filter_node("b"), filter_node("a"), filter_node("c", "{{a.x}} == {{b.x}}")]
    definition = {"nodes": nodes, "connections": edges("t>a", "t>b", "a>c", "b>c")}
    plan = validate_definition(definition, registry)
    assert [(n.id, n.predecessors) for n in plan.nodes] == [("t", []), ("b", ["t"]), ("a", ["t"]), ("c", ["a", "b"])]

    # Same graph, list order changed: the order follows the list wherever the graph allows.
    definition["nodes"] = [nodes[3], nodes[0], nodes[2], nodes[1]]
    plan = validate_definition(definition, registry)
    assert [n.id for n in plan.nodes] == ["t", "a", "b", "c"]
    assert [n.index for n in plan.nodes] == [1, 2, 3, 0]


def test_ancestors_are_transitive(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook("t"), filter_node("a"), filter_node("b"), filter_node("c")],
                  "connections": edges("t>a", "t>b", "a>c")}
    assert ancestors(validate_definition(definition, registry).nodes) == {
        "t": set(), "a": {"t"}, "b": {"t"}, "c": {"a", "t"},
    }


def test_templates_may_name_any_earlier_node(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook("t"), filter_node("a"), filter_node("b"),
                            filter_node("c", "{{a.x}} == {{t.payload}} && {{trigger.payload}} == {{input}}")],
                  "connections": edges("t>a", "a>b", "b>c")}
    assert [n.id for n in validate_definition(definition, registry).nodes] == ["t", "a", "b", "c"]


@pytest.mark.parametrize("url", ["{{trigger.payload.url}}", "https://api.example.com/{{trigger.payload.id}}"])
def test_a_templated_url_is_accepted_at_save_time(example_definition: dict[str, Any], registry: NodeRegistry,
                                                  url: str) -> None:
    example_definition["nodes"][1]["config"]["url"] = url
    assert validate_definition(example_definition, registry).nodes[1].config["url"] == url


def test_a_missing_or_null_config_means_defaults(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    del example_definition["nodes"][0]["config"]
    assert validate_definition(example_definition, registry).nodes[0].config == {}
    example_definition["nodes"][0]["config"] = None
    assert validate_definition(example_definition, registry).nodes[0].config == {}


# --- the shape of the definition ------------------------------------------------------------


@pytest.mark.parametrize("definition", [[], "nodes", None, 3])
def test_a_definition_must_be_an_object(definition: Any, registry: NodeRegistry) -> None:
    assert_errors(definition, registry,
                  [("definition", "must be an object with 'nodes' and optional 'connections'")])


@pytest.mark.parametrize("nodes", [[], None, {"id": "t"}, "t"])
def test_nodes_must_be_a_non_empty_list(nodes: Any, registry: NodeRegistry) -> None:
    assert_errors({"nodes": nodes}, registry, [("definition.nodes", "must be a non-empty list of nodes")])


def test_missing_nodes(registry: NodeRegistry) -> None:
    assert_errors({}, registry, [("definition.nodes", "must be a non-empty list of nodes")])


def test_too_many_nodes(registry: NodeRegistry) -> None:
    nodes = [webhook("t")] + [filter_node(f"n{i}") for i in range(MAX_NODES)]
    assert_errors({"nodes": nodes}, registry, [("definition.nodes", f"at most {MAX_NODES} nodes")])
    assert len(validate_definition({"nodes": nodes[:MAX_NODES]}, registry).nodes) == MAX_NODES


def test_unknown_keys_are_all_reported(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["options"] = {}
    example_definition["nodes"][0]["position"] = [0, 0]
    example_definition["nodes"][2]["onError"] = "stop"
    assert_errors(example_definition, registry, [
        ("definition.options", "unknown key (expected 'nodes', 'connections' and 'settings')"),
        ("definition.nodes[0].position", "unknown key"),
        ("definition.nodes[2].onError", "unknown key"),
    ])


def test_name_and_notes_are_allowed_on_nodes(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1].update(name="Call the API", notes="posts the payload")
    assert [n.id for n in validate_definition(example_definition, registry).nodes] == [
        "trigger-1", "action-1", "filter-1",
    ]


def test_a_node_must_be_an_object(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1] = "action-1"
    assert_errors(example_definition, registry,
                  [("definition.nodes[1]", "must be an object with 'id', 'type' and 'config'")])


# --- ids and types --------------------------------------------------------------------------

ID_ISSUE = "must be 1-64 characters of letters, digits, '_' and '-'"


@pytest.mark.parametrize("node_id", ["", "has space", "a.b", "-lead", "x" * 65, 5, None, "é", "a\n", "{{a}}"])
def test_bad_ids(node_id: Any, example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["id"] = node_id
    assert_errors(example_definition, registry, [("definition.nodes[2].id", ID_ISSUE)])


@pytest.mark.parametrize("node_id", ["a", "_x", "9", "A-b_c-1", "x" * 64])
def test_good_ids(node_id: str, example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["id"] = node_id
    example_definition["connections"][1]["to"] = node_id
    assert validate_definition(example_definition, registry).nodes[2].id == node_id


@pytest.mark.parametrize("reserved", ["trigger", "input"])
def test_reserved_ids(reserved: str, example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["id"] = reserved
    assert_errors(example_definition, registry, [
        ("definition.nodes[2].id", f"'{reserved}' is reserved (used in {{{{{reserved}...}}}} references)"),
    ])


def test_duplicate_ids(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["id"] = "action-1"
    assert_errors(example_definition, registry,
                  [("definition.nodes[2].id", "duplicate id 'action-1' (also nodes[1])")])


@pytest.mark.parametrize(("type_name", "shown"), [("email", "'email'"), (None, "None"), (3, "3")])
def test_unknown_type(type_name: Any, shown: str, example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["type"] = type_name
    assert_errors(example_definition, registry,
                  [("definition.nodes[1].type", f"unknown node type {shown}; known: {KNOWN_TYPES}")])


@pytest.mark.parametrize("config", [[], "url", 1])
def test_config_must_be_an_object(config: Any, example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"] = config
    assert_errors(example_definition, registry, [("definition.nodes[1].config", "must be an object")])


def test_errors_in_several_nodes_are_all_listed(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][0]["id"] = "bad id"
    example_definition["nodes"][1]["type"] = "nope"
    example_definition["nodes"][2]["config"] = {"condition": "true", "continue_on": "maybe"}
    assert_errors(example_definition, registry, [
        ("definition.nodes[0].id", ID_ISSUE),
        ("definition.nodes[1].type", f"unknown node type 'nope'; known: {KNOWN_TYPES}"),
        ("definition.nodes[2].config.continue_on", "Input should be a valid boolean, unable to interpret input"),
    ])


# --- configs, checked by each node's own schema ---------------------------------------------


@pytest.mark.parametrize(
    ("config_change", "field", "issue"),
    [
        ({"url": "not a url"}, "url", "Input should be a valid URL, relative URL without a base"),
        ({"url": "ftp://files.example.com/x"}, "url", "URL scheme should be 'http' or 'https'"),
        ({"url": 42}, "url", "URL input should be a string or URL"),
        ({"method": "HEAD"}, "method", "Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'"),
        ({"headers": {"X-List": [1]}}, "headers.X-List", "Input should be a valid string"),
        ({"timeout": 0}, "timeout", "Input should be greater than 0"),
        ({"body_type": "xml"}, "body_type", "Input should be 'auto', 'json' or 'text'"),
        ({"urll": "https://typo.example.com"}, "urll", "Extra inputs are not permitted"),
    ],
)
def test_http_request_config_errors(config_change: dict[str, Any], field: str, issue: str,
                                    example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"].update(config_change)
    assert_errors(example_definition, registry, [(f"definition.nodes[1].config.{field}", issue)])


def test_a_config_field_named_like_a_request_part_keeps_its_name(example_definition: dict[str, Any],
                                                                 registry: NodeRegistry) -> None:
    # "query" is also where FastAPI puts query-string errors; here it is the node's own field.
    example_definition["nodes"][1]["config"]["query"] = {"page": [1]}
    where = "definition.nodes[1].config.query.page"
    assert_errors(example_definition, registry, [  # pydantic names each member of the union it tried
        (f"{where}.str", "Input should be a valid string"),
        (f"{where}.int", "Input should be a valid integer"),
        (f"{where}.float", "Input should be a valid number"),
        (f"{where}.bool", "Input should be a valid boolean"),
    ])


def test_a_missing_required_field(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    del example_definition["nodes"][1]["config"]["url"]
    assert_errors(example_definition, registry, [("definition.nodes[1].config.url", "Field required")])


def test_every_config_error_is_listed(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"].update(url="nope", method="HEAD", extra=1)
    assert_errors(example_definition, registry, [
        ("definition.nodes[1].config.url", "Input should be a valid URL, relative URL without a base"),
        ("definition.nodes[1].config.method", "Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'"),
        ("definition.nodes[1].config.extra", "Extra inputs are not permitted"),
    ])


def test_webhook_config_is_checked_too(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][0]["config"] = {"method": "OPTIONS"}
    assert_errors(example_definition, registry, [
        ("definition.nodes[0].config.method", "Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'"),
    ])


def test_a_condition_that_does_not_compile(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["config"]["condition"] = "{{action-1.status}} =="
    error = errors_of(example_definition, registry)
    assert error.details is not None
    assert error.details["field"] == "definition.nodes[2].config.condition"
    assert error.details["issue"].startswith("not a valid CEL expression: ")
    assert len(error.details["errors"]) == 1


def test_an_empty_condition(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][2]["config"]["condition"] = ""
    assert_errors(example_definition, registry, [
        ("definition.nodes[2].config.condition", "String should have at least 1 character"),
    ])


# --- triggers and the graph -----------------------------------------------------------------


def test_no_trigger(registry: NodeRegistry) -> None:
    assert_errors({"nodes": [filter_node("a"), filter_node("b")]}, registry, [
        ("definition.nodes", "exactly one trigger node is required (found: none)"),
    ])


def test_two_triggers(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"].append(webhook("second"))
    assert_errors(example_definition, registry, [
        ("definition.nodes", "exactly one trigger node is required (found: trigger-1, second)"),
    ])


def test_without_connections_the_trigger_comes_first(registry: NodeRegistry) -> None:
    assert_errors({"nodes": [filter_node("a"), webhook("t")]}, registry, [
        ("definition.nodes[1]", "without connections the trigger must be the first node"),
    ])


def test_with_connections_the_trigger_may_be_anywhere_in_the_list(registry: NodeRegistry) -> None:
    plan = validate_definition({"nodes": [filter_node("a"), webhook("t")], "connections": edges("t>a")}, registry)
    assert [n.id for n in plan.nodes] == ["t", "a"]


@pytest.mark.parametrize("connections", ["t>a", {"from": "t", "to": "a"}, 1])
def test_connections_must_be_a_list(connections: Any, registry: NodeRegistry) -> None:
    assert_errors({"nodes": [webhook("t"), filter_node("a")], "connections": connections}, registry, [
        ("definition.connections", 'must be a list of {"from", "to"}'),
    ])


def test_a_connection_must_be_an_object(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"][0] = ["trigger-1", "action-1"]
    assert_errors(example_definition, registry, [
        ("definition.connections[0]", 'must be an object {"from", "to"}'),
    ])


def test_connection_errors(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"] = [
        {"from": "trigger-1", "to": "action-2"},
        {"from": "ghost", "to": "filter-1", "label": "x"},
        {"to": "filter-1"},
    ]
    assert_errors(example_definition, registry, [
        ("definition.connections[0].to", "no node with id 'action-2'"),
        ("definition.connections[1].label", "unknown key"),
        ("definition.connections[1].from", "no node with id 'ghost'"),
        ("definition.connections[2].from", "no node with id None"),
    ])


def test_self_loop(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"].append({"from": "action-1", "to": "action-1"})
    assert_errors(example_definition, registry, [("definition.connections[2]", "a node cannot connect to itself")])


def test_duplicate_edge(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"].append({"from": "action-1", "to": "filter-1"})
    assert_errors(example_definition, registry, [
        ("definition.connections[2]", "duplicate connection action-1 -> filter-1"),
    ])


def test_edge_into_the_trigger(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"].append({"from": "filter-1", "to": "trigger-1"})
    assert_errors(example_definition, registry, [
        ("definition.connections[2].to", "the trigger cannot have inbound connections"),
    ])


def test_a_two_node_cycle(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["connections"].append({"from": "filter-1", "to": "action-1"})
    error = errors_of(example_definition, registry)
    assert error.status_code == 422
    assert error.details == {
        "field": "definition.connections",
        "issue": "connections form a cycle: action-1 -> filter-1 -> action-1",
        "errors": [{"field": "definition.connections",
                    "issue": "connections form a cycle: action-1 -> filter-1 -> action-1"}],
    }


def test_a_longer_cycle_is_named(registry: NodeRegistry) -> None:
    nodes = [webhook("t"), filter_node("a"), filter_node("b"), filter_node("c"), filter_node("d")]
    definition = {"nodes": nodes, "connections": edges("t>a", "a>b", "b>c", "c>d", "d>b")}
    assert_errors(definition, registry, [("definition.connections", "connections form a cycle: b -> c -> d -> b")])


def test_nodes_not_reachable_from_the_trigger(registry: NodeRegistry) -> None:
    nodes = [webhook("t"), filter_node("a"), filter_node("island"), filter_node("b")]
    definition = {"nodes": nodes, "connections": edges("t>a", "island>b")}
    assert_errors(definition, registry, [
        ("definition.nodes[2]", "node 'island' is not connected to the trigger 't'"),
        ("definition.nodes[3]", "node 'b' is not connected to the trigger 't'"),
    ])


# --- references -----------------------------------------------------------------------------


def test_a_reference_to_a_later_node(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"]["headers"]["X-Prev"] = "{{filter-1.status}}"
    assert_errors(example_definition, registry, [
        ("definition.nodes[1].config.headers.X-Prev",
         "'{{filter-1.status}}' refers to node 'filter-1', which does not run before 'action-1'"),
    ])


def test_a_reference_to_itself(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"]["body"] = {"me": "{{action-1.body}}"}
    assert_errors(example_definition, registry, [
        ("definition.nodes[1].config.body.me",
         "'{{action-1.body}}' refers to node 'action-1', which does not run before 'action-1'"),
    ])


def test_a_reference_to_a_sibling_branch(registry: NodeRegistry) -> None:
    nodes = [webhook("t"), filter_node("a"), filter_node("b", "{{a.x}} == 1")]
    assert_errors({"nodes": nodes, "connections": edges("t>a", "t>b")}, registry, [
        ("definition.nodes[2].config.condition", "'{{a.x}}' refers to node 'a', which does not run before 'b'"),
    ])


def test_a_reference_to_a_node_that_does_not_exist(example_definition: dict[str, Any],
                                                   registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"]["body"] = {"list": ["ok", "{{ghost.x}}"]}
    example_definition["nodes"][2]["config"]["condition"] = "{{ghost.status}} == 200"
    assert_errors(example_definition, registry, [
        ("definition.nodes[1].config.body.list[1]", "'{{ghost.x}}' refers to node 'ghost', which does not exist"),
        ("definition.nodes[2].config.condition", "'{{ghost.status}}' refers to node 'ghost', which does not exist"),
    ])


def test_a_malformed_reference(example_definition: dict[str, Any], registry: NodeRegistry) -> None:
    example_definition["nodes"][1]["config"]["url"] = "https://api.example.com/{{trigger.payload.id"
    assert_errors(example_definition, registry, [
        ("definition.nodes[1].config.url", "unclosed '{{' (a reference is written {{node-id.field}})"),
    ])


def test_the_prefix_is_configurable(registry: NodeRegistry) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition({"nodes": []}, registry, prefix="body.definition")
    assert excinfo.value.details == {
        "field": "body.definition.nodes", "issue": "must be a non-empty list of nodes",
        "errors": [{"field": "body.definition.nodes", "issue": "must be a non-empty list of nodes"}],
    }
