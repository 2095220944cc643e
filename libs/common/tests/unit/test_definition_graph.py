"""Definitions with named outputs, loop bodies, per-node retry and timeout, and run settings."""

from __future__ import annotations

from typing import Any

import pytest

from automateos_common.errors import ValidationError
from automateos_common.nodes.definition import Edge, RetryPolicy, RunSettings, validate_definition
from automateos_common.nodes.registry import NodeRegistry, build_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


def webhook(node_id: str = "t") -> dict[str, Any]:
    return {"id": node_id, "type": "webhook"}


def if_node(node_id: str, condition: str = "true") -> dict[str, Any]:
    return {"id": node_id, "type": "if", "config": {"condition": condition}}


def transform(node_id: str, value: Any = None) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"value": value}}


def loop(node_id: str, items: Any = "{{trigger.payload.items}}") -> dict[str, Any]:
    return {"id": node_id, "type": "loop", "config": {"items": items}}


def edges(*specs: str) -> list[dict[str, str]]:
    """edges("t>a", "a:true>b") -> connections; `:name` is the output the connection leaves from."""
    out = []
    for spec in specs:
        src, dst = spec.split(">")
        conn = {"from": src, "to": dst}
        if ":" in src:
            conn["from"], conn["output"] = src.split(":")
        out.append(conn)
    return out


def assert_errors(definition: Any, registry: NodeRegistry, expected: list[tuple[str, str]]) -> None:
    """A 422 naming the first field and listing exactly these (field, issue) pairs."""
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition, registry)
    error = excinfo.value
    assert (error.status_code, error.code, error.message) == (422, "VALIDATION_ERROR", "Invalid workflow definition")
    items = [{"field": f, "issue": i} for f, i in expected]
    assert error.details == {"field": expected[0][0], "issue": expected[0][1], "errors": items}


# --- named outputs ----------------------------------------------------------------------------


def test_connections_from_named_outputs(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), if_node("check"), transform("yes"), transform("no"), transform("end")],
                  "connections": edges("t>check", "check:true>yes", "check:false>no", "yes>end")}
    plan = validate_definition(definition, registry)
    nodes = plan.by_id()
    assert nodes["check"].outbound == [Edge("check", "yes", "true"), Edge("check", "no", "false")]
    assert nodes["yes"].inbound == [Edge("check", "yes", "true")]
    assert nodes["end"].inbound == [Edge("yes", "end", None)]
    assert [n.id for n in plan.nodes] == ["t", "check", "yes", "no", "end"]


def test_one_output_may_lead_to_several_nodes(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), if_node("check"), transform("a"), transform("b")],
                  "connections": edges("t>check", "check:true>a", "check:true>b")}
    assert validate_definition(definition, registry).by_id()["check"].outbound == [
        Edge("check", "a", "true"), Edge("check", "b", "true"),
    ]


@pytest.mark.parametrize("output", ["yes", "True", "", 1, None])
def test_a_wrong_or_missing_output_name(output: Any, registry: NodeRegistry) -> None:
    connections: list[dict[str, Any]] = edges("t>check", "check:true>a")
    if output is None:
        del connections[1]["output"]
    else:
        connections[1]["output"] = output
    definition = {"nodes": [webhook(), if_node("check"), transform("a")], "connections": connections}
    assert_errors(definition, registry, [("definition.connections[1].output",
                                          "must name an output of 'check': true, false")])


def test_the_names_listed_are_the_nodes_own(registry: NodeRegistry) -> None:
    switch = {"id": "route", "type": "switch", "config": {"cases": [{"name": "eu", "condition": "true"}]}}
    definition = {"nodes": [webhook(), switch, loop("each"), transform("a")],
                  "connections": edges("t>route", "route:us>each", "each:after>a")}
    assert_errors(definition, registry, [
        ("definition.connections[1].output", "must name an output of 'route': eu, default"),
        ("definition.connections[2].output", "must name an output of 'each': each, done"),
    ])


def test_output_on_a_single_output_node(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), transform("a"), transform("b")],
                  "connections": edges("t:payload>a", "a>b")}
    assert_errors(definition, registry, [
        ("definition.connections[0].output", "'webhook' nodes have a single output; leave 'output' out"),
    ])
    definition["connections"] = edges("t>a", "a:true>b")
    assert_errors(definition, registry, [
        ("definition.connections[1].output", "'transform' nodes have a single output; leave 'output' out"),
    ])


@pytest.mark.parametrize("connections", [None, []])
def test_named_outputs_need_connections(connections: Any, registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), if_node("check"), transform("a"), loop("each")], "connections": connections}
    assert_errors(definition, registry, [
        ("definition.nodes[1]", "'if' nodes have named outputs: use connections that name them"),
        ("definition.nodes[3]", "'loop' nodes have named outputs: use connections that name them"),
    ])


def test_a_cycle_through_named_outputs_is_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), if_node("check"), transform("again")],
                  "connections": edges("t>check", "check:false>again", "again>check")}
    assert_errors(definition, registry,
                  [("definition.connections", "connections form a cycle: check -> again -> check")])


def test_cycles_are_still_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), transform("a"), transform("b"), transform("c")],
                  "connections": edges("t>a", "a>b", "b>c", "c>a")}
    assert_errors(definition, registry, [("definition.connections", "connections form a cycle: a -> b -> c -> a")])


def test_a_cycle_through_a_loop_body_is_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("each"), transform("body")],
                  "connections": edges("t>each", "each:each>body", "body>each")}
    assert_errors(definition, registry, [("definition.connections", "connections form a cycle: each -> body -> each")])


# --- loop bodies ------------------------------------------------------------------------------


def loop_definition() -> dict[str, Any]:
    return {
        "nodes": [webhook(), loop("each"), transform("fetch", {"n": "{{loop.item}}", "i": "{{loop.index}}"}),
                  if_node("ok", "{{fetch.n}} > 0 && {{loop.item}} != null"), transform("keep", "{{fetch.n}}"),
                  transform("summary", {"count": "{{each.count}}", "results": "{{each.results}}"})],
        "connections": edges("t>each", "each:each>fetch", "fetch>ok", "ok:true>keep", "each:done>summary"),
    }


def test_the_body_is_what_follows_each(registry: NodeRegistry) -> None:
    plan = validate_definition(loop_definition(), registry)
    nodes = plan.by_id()
    assert nodes["each"].body == ["fetch", "ok", "keep"]
    assert [(n.id, n.loop) for n in plan.nodes] == [
        ("t", None), ("each", None), ("fetch", "each"), ("ok", "each"), ("keep", "each"), ("summary", None),
    ]
    assert nodes["fetch"].body == []


def test_a_loop_without_a_body(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("each"), transform("after")], "connections": edges("t>each",
                                                                                                  "each:done>after")}
    assert validate_definition(definition, registry).by_id()["each"].body == []


def test_two_loops_one_after_the_other(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("first"), transform("a", "{{loop.item}}"),
                            loop("second", "{{first.results}}"), transform("b", "{{loop.item}}")],
                  "connections": edges("t>first", "first:each>a", "first:done>second", "second:each>b")}
    nodes = validate_definition(definition, registry).by_id()
    assert (nodes["first"].body, nodes["second"].body) == (["a"], ["b"])


def test_a_body_node_with_an_input_from_outside_the_body(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("each"), transform("body"), transform("before")],
                  "connections": edges("t>each", "t>before", "each:each>body", "before>body")}
    assert_errors(definition, registry, [
        ("definition.nodes[2]", "node 'body' is in the body of loop 'each' (it follows its 'each' output) and "
                                "cannot also have an input from 'before'"),
    ])


def test_done_cannot_lead_into_the_body(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("each"), transform("body"), transform("after")],
                  "connections": edges("t>each", "each:each>body", "each:done>after", "after>body")}
    assert_errors(definition, registry, [
        ("definition.nodes[2]", "node 'body' is in the body of loop 'each' (it follows its 'each' output) and "
                                "cannot also have an input from 'after'"),
    ])
    definition = {"nodes": [webhook(), loop("each"), transform("body")],
                  "connections": edges("t>each", "each:each>body", "each:done>body")}
    assert_errors(definition, registry, [
        ("definition.nodes[2]", "node 'body' is in the body of loop 'each' (it follows its 'each' output) and "
                                "cannot also follow its 'done' output"),
    ])


def test_two_outputs_of_one_node_may_lead_to_the_same_node_but_not_twice(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), if_node("check", "{{trigger.payload.n}} > 1"), transform("handler")],
                  "connections": edges("t>check", "check:true>handler", "check:false>handler")}
    plan = validate_definition(definition, registry)
    handler = plan.by_id()["handler"]
    assert handler.predecessors == ["check"]
    assert [(e.src, e.output) for e in handler.inbound] == [("check", "true"), ("check", "false")]
    definition["connections"].append({"from": "check", "output": "true", "to": "handler"})
    assert_errors(definition, registry, [("definition.connections[3]", "duplicate connection check.true -> handler")])


def test_nested_loops_are_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("outer"), loop("inner", "{{loop.item.lines}}"), transform("x")],
                  "connections": edges("t>outer", "outer:each>inner", "inner:each>x")}
    assert_errors(definition, registry, [
        ("definition.nodes[2]", "loop 'inner' is inside the body of loop 'outer'; nested loops are not supported "
                                "(run the inner loop in a workflow of its own)"),
        ("definition.nodes[3]", "node 'x' is in the bodies of both 'outer' and 'inner'"),
    ])


@pytest.mark.parametrize(("node", "field"), [
    (transform("after", {"item": "{{loop.item}}"}), "definition.nodes[3].config.value.item"),
    (if_node("after", "{{loop.index}} == 0"), "definition.nodes[3].config.condition"),
])
def test_loop_references_outside_a_body(node: dict[str, Any], field: str, registry: NodeRegistry) -> None:
    head = "loop.item" if "item" in field else "loop.index"
    definition = {"nodes": [webhook(), loop("each"), transform("body"), node],
                  "connections": edges("t>each", "each:each>body", "each:done>after")}
    if node["type"] == "if":
        definition["nodes"].append(transform("end"))
        definition["connections"] += edges("after:true>end")
    assert_errors(definition, registry, [(field, f"'{{{{{head}}}}}': 'loop' is only known inside a loop's body")])


def test_loop_references_in_the_loops_own_config(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("each", "{{loop.item}}"), transform("body")],
                  "connections": edges("t>each", "each:each>body")}
    assert_errors(definition, registry, [
        ("definition.nodes[1].config.items", "'{{loop.item}}': 'loop' is only known inside a loop's body"),
    ])


def test_after_the_loop_a_body_node_is_refused_with_a_hint(registry: NodeRegistry) -> None:
    definition = loop_definition()
    definition["nodes"][5]["config"]["value"] = {"last": "{{fetch.n}}", "all": "{{each.results}}"}
    assert_errors(definition, registry, [
        ("definition.nodes[5].config.value.last", "'{{fetch.n}}' refers to 'fetch', which runs once per item "
                                                  "inside loop 'each'; use '{{each.results}}'"),
    ])


def test_a_body_node_of_another_loop_is_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), loop("first"), transform("a"), loop("second"), transform("b", "{{a}}")],
                  "connections": edges("t>first", "first:each>a", "first:done>second", "second:each>b")}
    assert_errors(definition, registry, [
        ("definition.nodes[4].config.value", "'{{a}}' refers to 'a', which runs once per item inside loop "
                                             "'first'; use '{{first.results}}'"),
    ])


def test_a_body_may_use_what_ran_before_the_loop(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), transform("setup", 1), loop("each"),
                            transform("body", {"s": "{{setup}}", "t": "{{trigger.payload}}", "l": "{{each}}"})],
                  "connections": edges("t>setup", "setup>each", "each:each>body")}
    assert validate_definition(definition, registry).by_id()["body"].loop == "each"


# --- per-node retry and timeout ---------------------------------------------------------------


def two_nodes(**extra: Any) -> dict[str, Any]:
    return {"nodes": [webhook(), {**transform("a", 1), **extra}]}


def test_retry_policy(registry: NodeRegistry) -> None:
    plan = validate_definition(two_nodes(retry={"max_attempts": 5, "backoff": "fixed", "initial_s": 2,
                                                "on": ["5xx", "429"]}), registry)
    assert plan.nodes[1].retry == RetryPolicy(max_attempts=5, backoff="fixed", initial_s=2.0, max_s=300.0,
                                              on=["5xx", "429"])
    defaults = validate_definition(two_nodes(retry={}), registry).nodes[1].retry
    assert defaults == RetryPolicy(max_attempts=3, backoff="exponential", initial_s=1.0, max_s=300.0,
                                   on=["timeout", "connection_error", "5xx", "429"])
    assert validate_definition(two_nodes(), registry).nodes[1].retry is None
    assert validate_definition(two_nodes(retry=None), registry).nodes[1].retry is None


@pytest.mark.parametrize(("retry", "expected"), [
    ({"backoff": "linear"}, [("backoff", "Input should be 'exponential' or 'fixed'")]),
    ({"max_attempts": 0}, [("max_attempts", "Input should be greater than or equal to 1")]),
    ({"max_attempts": 26}, [("max_attempts", "Input should be less than or equal to 25")]),
    ({"initial_s": 0}, [("initial_s", "Input should be greater than 0")]),
    ({"on": ["5xx", "404"]}, [("on[1]", "Input should be 'timeout', 'connection_error', '5xx', '429' or 'error'")]),
    ({"attempts": 3}, [("attempts", "Extra inputs are not permitted")]),
    ("always", [("", "Input should be a valid dictionary or instance of RetryPolicy")]),
])
def test_retry_errors(retry: Any, expected: list[tuple[str, str]], registry: NodeRegistry) -> None:
    where = "definition.nodes[1].retry"
    assert_errors(two_nodes(retry=retry), registry,
                  [(f"{where}{'' if not f else ('' if f.startswith('[') else '.') + f}", i) for f, i in expected])


@pytest.mark.parametrize("timeout_s", [0.5, 30, 86_400])
def test_node_timeout(timeout_s: float, registry: NodeRegistry) -> None:
    assert validate_definition(two_nodes(timeout_s=timeout_s), registry).nodes[1].timeout_s == float(timeout_s)
    assert validate_definition(two_nodes(), registry).nodes[1].timeout_s is None


@pytest.mark.parametrize("timeout_s", [0, -1, 86_401, "30", True, [30]])
def test_node_timeout_errors(timeout_s: Any, registry: NodeRegistry) -> None:
    assert_errors(two_nodes(timeout_s=timeout_s), registry,
                  [("definition.nodes[1].timeout_s", "must be a number of seconds above 0, at most 86400")])


def test_retry_and_timeout_errors_are_listed_with_config_errors(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), {"id": "a", "type": "transform", "config": {}, "retry": {"backoff": "x"},
                                        "timeout_s": 0}]}
    assert_errors(definition, registry, [
        ("definition.nodes[1].retry.backoff", "Input should be 'exponential' or 'fixed'"),
        ("definition.nodes[1].timeout_s", "must be a number of seconds above 0, at most 86400"),
    ])


# --- run settings -----------------------------------------------------------------------------


def test_settings(registry: NodeRegistry) -> None:
    plan = validate_definition({**two_nodes(), "settings": {"timeout_s": 3600, "max_parallel": 2}}, registry)
    assert plan.settings == RunSettings(timeout_s=3600.0, max_parallel=2)
    assert validate_definition(two_nodes(), registry).settings == RunSettings(timeout_s=None, max_parallel=8)
    assert validate_definition({**two_nodes(), "settings": {}}, registry).settings == RunSettings()


@pytest.mark.parametrize(("settings", "expected"), [
    ({"timeout_s": 0}, [("timeout_s", "Input should be greater than 0")]),
    ({"timeout_s": 367 * 86_400}, [("timeout_s", "Input should be less than or equal to 31622400")]),
    ({"max_parallel": 0}, [("max_parallel", "Input should be greater than or equal to 1")]),
    ({"max_parallel": 65}, [("max_parallel", "Input should be less than or equal to 64")]),
    ({"max_parallel": "many"}, [("max_parallel", "Input should be a valid integer, unable to parse string as an "
                                                 "integer")]),
    ({"retries": 1}, [("retries", "Extra inputs are not permitted")]),
])
def test_settings_errors(settings: dict[str, Any], expected: list[tuple[str, str]], registry: NodeRegistry) -> None:
    assert_errors({**two_nodes(), "settings": settings}, registry,
                  [(f"definition.settings.{f}", i) for f, i in expected])


def test_a_retry_whose_first_wait_is_longer_than_its_longest_is_refused(registry: NodeRegistry) -> None:
    definition = {"nodes": [webhook(), {**transform("x"), "retry": {"initial_s": 600}}]}
    assert_errors(definition, registry, [
        ("definition.nodes[1].retry", "Value error, initial_s (600) is longer than max_s (300)"),
    ])
