"""Which steps a replay from `failed` keeps: exactly those still valid under the current plan."""

from __future__ import annotations

import re
from typing import Any

import pytest

from automateos_common.errors import ConflictError
from automateos_common.nodes.definition import Edge, Plan, PlannedNode, validate_definition
from automateos_common.nodes.registry import build_registry
from automateos_common.runs import RunState, RunStatus, StepState, StepStatus, history_value
from automateos_workflows.replay import build_replay, copied_steps

REGISTRY = build_registry(entry_points_group=None)
S = StepStatus


def plan_of(nodes: list[tuple[str, str, list[str], str | None]]) -> Plan:
    """A plan by hand: (id, type, inbound sources, loop it is in); in execution order."""
    planned = []
    for i, (node_id, type_, sources, loop) in enumerate(nodes):
        cls = REGISTRY.get(type_)
        assert cls is not None
        planned.append(PlannedNode(index=i, id=node_id, type=type_, cls=cls, config={}, predecessors=sources,
                                   inbound=[Edge(src, node_id) for src in sources], loop=loop))
    return Plan(nodes=planned, trigger_id=nodes[0][0])


def run_with(steps: list[StepState], status: RunStatus = RunStatus.FAILED) -> RunState:
    return RunState(id="old", workflow_id=1, owner_id=7, trigger="manual", status=status, payload={"p": 1},
                    trigger_data={"payload": {"p": 1}, "headers": {}, "query": {}, "method": "POST"}, steps=steps)


def ok(node_id: str, type_: str = "http_request", **fields: Any) -> StepState:
    return StepState(node_id=node_id, type=type_, position=0, status=S.SUCCESS, attempts=1,
                     output=fields.pop("output", {"from": node_id}), **fields)


def test_positions_are_the_current_plans_and_the_chain_stops_at_the_first_gap():
    # t -> a -> b -> c, and t -> x: b failed, so c is not kept although it had succeeded once.
    plan = plan_of([("t", "webhook", [], None), ("x", "http_request", ["t"], None),
                    ("a", "http_request", ["t"], None), ("b", "http_request", ["a"], None),
                    ("c", "http_request", ["b"], None)])
    old = run_with([ok("t", "webhook"), ok("a"), StepState(node_id="b", type="http_request", position=2,
                                                           status=S.FAILED), ok("c"), ok("x", branch="true")])
    kept = copied_steps(old, plan)
    assert [(s.key, s.position) for s in kept] == [("t", 0), ("x", 1), ("a", 2)]
    assert {s.note for s in kept} == {"copied from execution old"}
    assert kept[1].branch == "true"
    assert old.steps[1].note is None and old.steps[1].position == 0  # the old run's steps are not touched


def test_loop_bodies_run_again_with_their_loop():
    # `l` is a loop whose body is `each`; its iterations are steps `each[0]`, `each[1]`.
    plan = plan_of([("t", "webhook", [], None), ("l", "http_request", ["t"], None),
                    ("each", "http_request", ["l"], "l"), ("after", "http_request", ["l"], None),
                    ("fails", "http_request", ["after"], None)])
    old = run_with([ok("t", "webhook"), ok("l"), ok("each", iteration=0, loop="l"), ok("each", iteration=1, loop="l"),
                    ok("after"), StepState(node_id="fails", type="http_request", position=5, status=S.FAILED)])
    assert [s.key for s in copied_steps(old, plan)] == ["t", "l", "after"]
    # A body node's own key ("each") is never in the old run; and were it, the body is not copied.
    old.steps.append(ok("each"))
    assert [s.key for s in copied_steps(old, plan)] == ["t", "l", "after"]


def test_only_whole_successful_outputs_of_the_same_type_are_kept():
    plan = plan_of([("t", "webhook", [], None), ("a", "http_request", ["t"], None),
                    ("b", "filter", ["t"], None), ("c", "http_request", ["t"], None),
                    ("d", "http_request", ["t"], None), ("e", "http_request", ["t"], None)])
    old = run_with([
        ok("t", "webhook"),
        ok("a", output=history_value({"blob": "x" * 5000}, 1024)),  # cut in history
        ok("b", "http_request"),  # was another type
        StepState(node_id="c", type="http_request", position=3, status=S.SKIPPED),
        StepState(node_id="d", type="http_request", position=4, status=S.CANCELLED),
        # e never ran in the old run (a node added since)
    ])
    assert [s.key for s in copied_steps(old, plan)] == ["t"]


def test_a_failed_trigger_keeps_nothing():
    plan = plan_of([("t", "webhook", [], None), ("a", "http_request", ["t"], None)])
    old = run_with([StepState(node_id="t", type="webhook", position=0, status=S.FAILED), ok("a")])
    assert copied_steps(old, plan) == []


def test_build_replay():
    plan = validate_definition({"nodes": [{"id": "t", "type": "webhook"},
                                          {"id": "a", "type": "http_request", "config": {"url": "https://x.test"}}]},
                               REGISTRY)
    old = run_with([ok("t", "webhook"), StepState(node_id="a", type="http_request", position=1, status=S.FAILED)])
    new = build_replay(old, plan, "failed")
    assert (new.status, new.replay_of, new.trigger, new.payload, new.trigger_data) == \
        (RunStatus.QUEUED, "old", "manual", {"p": 1}, old.trigger_data)
    assert new.id != old.id and [s.key for s in new.steps] == ["t"]
    assert build_replay(old, None, "start").steps == []

    for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED):
        with pytest.raises(ConflictError, match=f"this one is {status.value}"):
            build_replay(run_with([], status), plan, "start")
    with pytest.raises(ConflictError, match=re.escape('use {"from": "start"}')):
        build_replay(run_with([], RunStatus.SUCCESS), plan, "failed")
    assert build_replay(run_with([], RunStatus.SUCCESS), plan, "start").replay_of == "old"
