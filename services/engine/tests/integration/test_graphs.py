"""Graphs against a real Redis: parallel branches, if/switch routing, joins, merge, loops, delays."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field
from services.engine.tests.factories import echo_handler, publish, queue_run, runtime

from automateos_common.jsonutil import utcnow
from automateos_common.lease import Leases
from automateos_common.nodes.base import Node, NodeConfig, NodeContext
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.runs import RunState, RunStatus, RunStore, StepStatus
from automateos_engine.driver import EngineConfig
from automateos_engine.executor import Executor

pytestmark = pytest.mark.integration


class SleepConfig(NodeConfig):
    seconds: float = Field(ge=0)
    value: Any = None


class SleepNode(Node):
    """Holds its thread like a slow API call would."""

    type = "sleep"
    Config = SleepConfig

    def run(self, ctx: NodeContext, config: BaseModel, input: Any) -> Any:
        assert isinstance(config, SleepConfig)
        time.sleep(config.seconds)
        return {"slept": config.seconds, "value": config.value, "input": input}


def registry() -> NodeRegistry:
    reg = build_registry(entry_points_group=None)
    reg.register(SleepNode, "test")
    return reg


def run_it(redis: Any, definition: dict[str, Any], payload: Any = None, *, calls: list[httpx.Request] | None = None,
           config: EngineConfig | None = None) -> RunState:
    publish(redis, definition)
    queued = queue_run(redis, payload)
    Executor(runtime(redis, echo_handler(calls if calls is not None else []), registry=registry(),
                     config=config)).execute(queued.id)
    run = RunStore(redis).load(queued.id)
    assert run is not None
    return run


def by_key(run: RunState) -> dict[str, Any]:
    return {s.key: s for s in run.steps}


def node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "config": config}


def edge(src: str, dst: str, output: str | None = None) -> dict[str, str]:
    return {"from": src, "to": dst, **({"output": output} if output else {})}


def test_two_one_second_branches_take_about_one_second(redis_client):
    definition = {
        "nodes": [node("t", "webhook"), node("a", "sleep", seconds=1, value="A"),
                  node("b", "sleep", seconds=1, value="B"), node("m", "merge", mode="object")],
        "connections": [edge("t", "a"), edge("t", "b"), edge("a", "m"), edge("b", "m")],
    }
    started = time.monotonic()
    run = run_it(redis_client, definition, {"x": 1})
    elapsed = time.monotonic() - started

    assert run.status == RunStatus.SUCCESS, run.error_message
    assert 1.0 <= elapsed < 1.8, elapsed
    merged = by_key(run)["m"].output
    assert list(merged) == ["a", "b"]  # connection order
    assert merged["a"]["value"] == "A" and merged["b"]["value"] == "B"
    assert run.result == merged


def test_two_one_second_delays_in_parallel_take_about_one_second(redis_client):
    definition = {
        "nodes": [node("t", "webhook"), node("d1", "delay", seconds=1), node("d2", "delay", seconds=1),
                  node("m", "merge", mode="array")],
        "connections": [edge("t", "d1"), edge("t", "d2"), edge("d1", "m"), edge("d2", "m")],
    }
    started = time.monotonic()
    run = run_it(redis_client, definition, {"x": 1})
    assert run.status == RunStatus.SUCCESS, run.error_message
    assert 1.0 <= time.monotonic() - started < 1.8


def test_max_parallel_limits_how_many_steps_run_at_once(redis_client):
    definition = {
        "nodes": [node("t", "webhook")] + [node(f"s{i}", "sleep", seconds=0.5) for i in range(4)],
        "connections": [edge("t", f"s{i}") for i in range(4)],
        "settings": {"max_parallel": 2},
    }
    started = time.monotonic()
    run = run_it(redis_client, definition)
    assert run.status == RunStatus.SUCCESS
    assert 1.0 <= time.monotonic() - started < 1.6  # two rounds of two


def if_else_join(condition: str) -> dict[str, Any]:
    return {
        "nodes": [node("t", "webhook"), node("check", "if", condition=condition),
                  node("yes", "transform", value={"branch": "yes", "n": "{{trigger.payload.n}}"}),
                  node("no", "transform", value={"branch": "no"}),
                  node("after", "transform", value={"got": "{{input}}"})],
        "connections": [edge("t", "check"), edge("check", "yes", "true"), edge("check", "no", "false"),
                        edge("yes", "after"), edge("no", "after")],
    }


@pytest.mark.parametrize(("n", "taken", "skipped"), [(5, "yes", "no"), (1, "no", "yes")])
def test_if_routes_to_one_branch_skips_the_other_and_the_join_runs(redis_client, n, taken, skipped):
    run = run_it(redis_client, if_else_join("{{trigger.payload.n}} > 3"), {"n": n})
    steps = by_key(run)
    assert run.status == RunStatus.SUCCESS, run.error_message
    assert steps["check"].branch == ("true" if n > 3 else "false")
    assert steps[taken].status == StepStatus.SUCCESS
    assert steps[skipped].status == StepStatus.SKIPPED
    assert steps["after"].status == StepStatus.SUCCESS
    assert steps["after"].output == {"got": steps[taken].output}  # only the branch taken feeds it
    assert run.result == steps["after"].output


def test_switch_takes_the_first_matching_case_or_default(redis_client):
    def definition() -> dict[str, Any]:
        return {
            "nodes": [node("t", "webhook"),
                      node("route", "switch", cases=[{"name": "big", "condition": "{{trigger.payload.n}} > 100"},
                                                     {"name": "mid", "condition": "{{trigger.payload.n}} > 10"}]),
                      node("big", "transform", value="big"), node("mid", "transform", value="mid"),
                      node("other", "transform", value="other")],
            "connections": [edge("t", "route"), edge("route", "big", "big"), edge("route", "mid", "mid"),
                            edge("route", "other", "default")],
        }

    for n, expected in [(500, "big"), (50, "mid"), (5, "other")]:
        run = run_it(redis_client, definition(), {"n": n})
        steps = by_key(run)
        assert run.status == RunStatus.SUCCESS
        ran = [k for k in ("big", "mid", "other") if steps[k].status == StepStatus.SUCCESS]
        assert ran == [expected]
        assert run.result == expected


def test_two_cases_may_share_a_handler(redis_client):
    definition = {
        "nodes": [node("t", "webhook"),
                  node("route", "switch", cases=[{"name": "a", "condition": "{{trigger.payload.k}} == 'a'"},
                                                 {"name": "b", "condition": "{{trigger.payload.k}} == 'b'"}]),
                  node("ab", "transform", value="a-or-b:{{trigger.payload.k}}"), node("other", "transform", value=0)],
        "connections": [edge("t", "route"), edge("route", "ab", "a"), edge("route", "ab", "b"),
                        edge("route", "other", "default")],
    }
    for k, expected in [("a", "a-or-b:a"), ("b", "a-or-b:b"), ("c", 0)]:
        run = run_it(redis_client, definition, {"k": k})
        assert run.status == RunStatus.SUCCESS
        assert run.result == expected


def test_a_filter_that_stops_skips_only_what_depends_on_it(redis_client):
    definition = {
        "nodes": [node("t", "webhook"), node("f", "filter", condition="{{trigger.payload.ok}} == true"),
                  node("after-f", "transform", value=1), node("other", "transform", value=2)],
        "connections": [edge("t", "f"), edge("f", "after-f"), edge("t", "other")],
    }
    run = run_it(redis_client, definition, {"ok": False})
    steps = by_key(run)
    assert run.status == RunStatus.SUCCESS
    assert steps["f"].stopped is True
    assert steps["after-f"].status == StepStatus.SKIPPED
    assert steps["other"].status == StepStatus.SUCCESS


def loop_definition(concurrency: int, seconds: float = 0.0) -> dict[str, Any]:
    return {
        "nodes": [node("t", "webhook"),
                  node("each", "loop", items="{{trigger.payload.users}}", concurrency=concurrency),
                  node("work", "sleep", seconds=seconds, value="{{loop.item.name}}"),
                  node("shape", "transform", value={"name": "{{work.value}}", "i": "{{loop.index}}"}),
                  node("done", "transform", value={"all": "{{each.results}}", "count": "{{each.count}}"})],
        "connections": [edge("t", "each"), edge("each", "work", "each"), edge("work", "shape"),
                        edge("each", "done", "done")],
    }


def test_loop_runs_its_body_once_per_item_and_collects_results_in_order(redis_client):
    users = [{"name": n} for n in ("ada", "bob", "cy")]
    run = run_it(redis_client, loop_definition(concurrency=1), {"users": users})
    steps = by_key(run)
    assert run.status == RunStatus.SUCCESS, run.error_message
    assert steps["work[0]"].input == {"name": "ada"}  # the item is the body's input
    assert [steps[f"shape[{i}]"].output for i in range(3)] == [
        {"name": "ada", "i": 0}, {"name": "bob", "i": 1}, {"name": "cy", "i": 2}]
    assert steps["each"].output == {"count": 3, "results": [steps[f"shape[{i}]"].output for i in range(3)]}
    assert steps["each"].branch == "done"
    assert steps["done"].output == {"all": steps["each"].output["results"], "count": 3}
    assert {s.loop for s in run.steps if s.iteration is not None} == {"each"}


def test_loop_concurrency_limits_items_in_flight(redis_client):
    users = [{"name": str(i)} for i in range(4)]
    started = time.monotonic()
    run = run_it(redis_client, loop_definition(concurrency=2, seconds=0.5), {"users": users})
    assert run.status == RunStatus.SUCCESS
    assert 1.0 <= time.monotonic() - started < 1.6  # 4 items, 2 at a time, 0.5 s each


def test_loop_over_nothing_finishes_at_once(redis_client):
    run = run_it(redis_client, loop_definition(concurrency=3), {"users": []})
    assert run.status == RunStatus.SUCCESS
    assert by_key(run)["each"].output == {"count": 0, "results": []}


def test_a_loop_over_too_many_steps_fails_with_the_limit_named(redis_client):
    users = [{"name": str(i)} for i in range(10)]
    run = run_it(redis_client, loop_definition(concurrency=1), {"users": users},
                 config=EngineConfig(heartbeat_s=0.05, run_max_steps=12))
    assert run.status == RunStatus.FAILED
    assert "12 steps" in (run.error_message or "") and "AUTOMATEOS_RUN_MAX_STEPS" in (run.error_message or "")
    assert by_key(run)["done"].status == StepStatus.SKIPPED


def test_a_failing_item_fails_the_loop_and_the_run(redis_client):
    definition = loop_definition(concurrency=1)
    definition["nodes"][2] = node("work", "http_request", url="https://api.example/{{loop.item.name}}",
                                  fail_on_status=True)
    publish(redis_client, definition)
    queued = queue_run(redis_client, {"users": [{"name": "ok"}, {"name": "bad"}, {"name": "never"}]})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path == "/bad" else 200, json={})

    Executor(runtime(redis_client, handler, registry=registry())).execute(queued.id)
    run = RunStore(redis_client).load(queued.id)
    steps = by_key(run)
    assert run.status == RunStatus.FAILED
    assert run.error_message.startswith("node 'work[1]' failed: GET https://api.example/bad answered 404")
    assert steps["each"].status == StepStatus.FAILED
    assert steps["each"].error.startswith("item 1: node 'work' failed")
    assert "work[2]" not in steps  # the next item never started
    assert steps["done"].status == StepStatus.SKIPPED


def test_a_long_delay_parks_the_run_and_the_reaper_brings_it_back(redis_client):
    definition = {"nodes": [node("t", "webhook"), node("wait", "delay", hours=1),
                            node("after", "transform", value="{{input}}")]}
    publish(redis_client, definition)
    queued = queue_run(redis_client, {"k": "v"})
    executor = Executor(runtime(redis_client, echo_handler([]), registry=registry()))

    before = utcnow()
    parked = executor.execute(queued.id)

    assert parked is not None and parked.status == RunStatus.WAITING
    assert parked.resume_at is not None
    assert timedelta(minutes=59) < parked.resume_at - before <= timedelta(hours=1, seconds=5)
    assert by_key(parked)["wait"].status == StepStatus.WAITING
    leases = Leases(redis_client)
    assert leases.holder(queued.id) is None  # the worker let go of it
    assert leases.due_at(queued.id) == pytest.approx(parked.resume_at.timestamp(), abs=0.01)
    assert leases.claim_due() == []  # not due yet

    # A duplicate job that arrives early changes nothing.
    assert executor.execute(queued.id).status == RunStatus.WAITING

    # An hour passes (moved, not waited): the reaper claims it, and the run continues.
    store = RunStore(redis_client)
    run = store.load(queued.id)
    wait_step = by_key(run)["wait"]
    wait_step.resume_at = run.resume_at = utcnow() - timedelta(seconds=1)
    with redis_client.pipeline() as pipe:
        store.write(pipe, run, steps=[wait_step])
        Leases.set_due(pipe, run.id, time.time() - 1)
        pipe.execute()
    assert leases.claim_due() == [queued.id]
    assert leases.claim_due() == []  # claimed once

    done = executor.execute(queued.id)
    assert done.status == RunStatus.SUCCESS
    assert by_key(done)["after"].output == {"payload": {"k": "v"}, **by_key(done)["t"].output}
    assert leases.due_at(queued.id) is None


def test_a_second_worker_does_not_run_a_run_that_is_held(redis_client):
    publish(redis_client, {"nodes": [node("t", "webhook")]})
    queued = queue_run(redis_client, {})
    assert Leases(redis_client).acquire(queued.id, "someone-else", 30)

    Executor(runtime(redis_client, echo_handler([]))).execute(queued.id)

    assert RunStore(redis_client).load(queued.id).status == RunStatus.QUEUED


def test_a_run_interrupted_too_often_fails_instead_of_taking_more_workers_down(redis_client):
    publish(redis_client, {"nodes": [node("t", "webhook")]})
    queued = queue_run(redis_client, {})
    store = RunStore(redis_client)
    run = store.load(queued.id)
    run.set_status(RunStatus.RUNNING)
    with redis_client.pipeline() as pipe:
        store.write(pipe, run)
        pipe.hset(store.key(run.id), "interruptions", 4)  # this pick-up is the fifth
        pipe.execute()

    Executor(runtime(redis_client, echo_handler([]))).execute(queued.id)

    failed = store.load(queued.id)
    assert failed.status == RunStatus.FAILED
    assert failed.error_message.startswith("the run was interrupted 5 times")
