"""The execution loop against a real Redis: order, data flow, recording, stops, failures, resume."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from services.engine.tests.factories import echo_handler, publish, queue_run, runtime

from automateos_common.nodes.base import Node, NodeConfig, NodeContext
from automateos_common.nodes.registry import build_registry
from automateos_common.runs import EVENTS_STREAM, RunStatus, RunStore, StepStatus
from automateos_devstack.testing import example_definition
from automateos_engine.executor import Executor

pytestmark = pytest.mark.integration


def steps_by_id(run: Any) -> dict[str, Any]:
    return {s.node_id: s for s in run.steps}


def test_api_example_runs_every_node_in_order_and_records_each_step(redis_client):
    publish(redis_client, example_definition())
    queued = queue_run(redis_client, {"hello": "world"})
    calls: list[httpx.Request] = []

    Executor(runtime(redis_client, echo_handler(calls))).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    assert run is not None
    assert run.status == RunStatus.SUCCESS
    assert [s.node_id for s in run.steps] == ["trigger-1", "action-1", "filter-1"]
    assert [s.status for s in run.steps] == [StepStatus.SUCCESS] * 3
    trigger, action, flt = run.steps
    assert trigger.input is None
    assert trigger.output["payload"] == {"hello": "world"}
    assert action.input == trigger.output  # each node's input is the previous node's output
    assert len(calls) == 1
    assert calls[0].method == "POST"
    assert json.loads(calls[0].content) == {"hello": "world"}  # "{{trigger.payload}}" kept its JSON type
    assert action.output["status"] == 200
    assert action.output["body"] == {"echo": '{"hello":"world"}', "path": "/data"}
    assert flt.input == action.output
    assert flt.output == action.output
    assert flt.note == "condition true; continued"
    assert run.result == action.output
    assert all(s.attempts == 1 and s.started_at and s.completed_at for s in run.steps)
    assert run.workflow_version == 1
    assert run.duration_ms is not None and run.duration_ms >= 0
    # Writes are one per round: queued; picked up + trigger done + action-1 running (before its call);
    # action-1 done + filter-1 done + finished.
    assert redis_client.xlen(EVENTS_STREAM) == 3


def test_filter_that_does_not_match_stops_the_run_successfully_and_skips_the_rest(redis_client):
    definition = example_definition()
    definition["nodes"][2]["config"]["condition"] = "{{action-1.status}} == 201"
    definition["nodes"].append({"id": "after", "type": "http_request", "config": {"url": "https://x.example/after"}})
    definition["connections"].append({"from": "filter-1", "to": "after"})
    publish(redis_client, definition)
    queued = queue_run(redis_client, {"n": 1})
    calls: list[httpx.Request] = []

    Executor(runtime(redis_client, echo_handler(calls))).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    steps = steps_by_id(run)
    assert run.status == RunStatus.SUCCESS
    assert steps["filter-1"].status == StepStatus.SUCCESS
    assert steps["filter-1"].note == "condition false; run stopped here"
    assert steps["after"].status == StepStatus.SKIPPED
    assert len(calls) == 1


def test_failing_node_fails_the_run_and_skips_later_nodes(redis_client):
    definition = example_definition()
    definition["nodes"][1]["config"]["fail_on_status"] = True
    publish(redis_client, definition)
    queued = queue_run(redis_client, {})
    calls: list[httpx.Request] = []

    Executor(runtime(redis_client, echo_handler(calls, status=500))).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    steps = steps_by_id(run)
    assert run.status == RunStatus.FAILED
    assert run.error_message == "node 'action-1' failed: POST https://api.example.com/data answered 500"
    assert steps["action-1"].status == StepStatus.FAILED
    assert steps["action-1"].error == "POST https://api.example.com/data answered 500"
    assert steps["filter-1"].status == StepStatus.SKIPPED
    assert run.result == steps["trigger-1"].output


def test_reference_that_resolves_to_nothing_fails_the_step_with_the_field(redis_client):
    definition = example_definition(url="{{trigger.payload.target}}")
    publish(redis_client, definition)
    queued = queue_run(redis_client, {"no_target": True})

    Executor(runtime(redis_client, echo_handler([]))).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    error = steps_by_id(run)["action-1"].error
    assert run.status == RunStatus.FAILED
    assert error.startswith("config.url: ")
    assert error.endswith("(after resolving references)")


def test_resume_after_a_crash_continues_from_the_first_unfinished_step(redis_client):
    publish(redis_client, example_definition())
    queued = queue_run(redis_client, {"a": 1})
    store = RunStore(redis_client)
    calls: list[httpx.Request] = []
    executor = Executor(runtime(redis_client, echo_handler(calls)))
    # Simulate a worker that died while action-1 was running: trigger-1 done, action-1 started.
    run = store.load(queued.id)
    from automateos_common.jsonutil import utcnow
    from automateos_common.runs import StepState

    run.set_status(RunStatus.RUNNING)
    run.started_at = utcnow()
    run.steps = [StepState(node_id=n, type=t, position=i) for i, (n, t) in
                 enumerate([("trigger-1", "webhook"), ("action-1", "http_request"), ("filter-1", "filter")])]
    t1, a1, _ = run.steps
    t1.set_status(StepStatus.RUNNING)
    t1.set_status(StepStatus.SUCCESS)
    t1.output = {"payload": {"a": 1}, "marker": "from-before-the-crash"}
    t1.attempts = 1
    a1.set_status(StepStatus.RUNNING)
    a1.attempts = 1
    with redis_client.pipeline() as pipe:
        store.write(pipe, run, steps=run.steps, order=True)
        pipe.execute()

    executor.execute(queued.id)

    done = store.load(queued.id)
    steps = steps_by_id(done)
    assert done.status == RunStatus.SUCCESS
    assert steps["trigger-1"].output["marker"] == "from-before-the-crash"  # not executed again
    assert steps["trigger-1"].attempts == 1
    assert steps["action-1"].attempts == 2
    assert steps["action-1"].input["marker"] == "from-before-the-crash"
    assert len(calls) == 1


def test_finished_run_is_not_executed_again(redis_client):
    publish(redis_client, example_definition())
    queued = queue_run(redis_client, {})
    calls: list[httpx.Request] = []
    executor = Executor(runtime(redis_client, echo_handler(calls)))
    executor.execute(queued.id)
    events = redis_client.xlen(EVENTS_STREAM)

    executor.execute(queued.id)  # a duplicate delivery

    assert len(calls) == 1
    assert redis_client.xlen(EVENTS_STREAM) == events


def test_deleted_workflow_fails_the_run(redis_client):
    publish(redis_client, example_definition(), workflow_id=1)
    queued = queue_run(redis_client, {}, workflow_id=2)  # workflow 2 is not in the (complete) catalog

    Executor(runtime(redis_client, echo_handler([]))).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    assert run.status == RunStatus.FAILED
    assert run.error_message == "the workflow no longer exists"
    assert run.steps == []


def test_definition_comes_from_the_workflows_service_when_redis_lost_the_catalog(redis_client):
    asked: list[httpx.Request] = []

    def workflows(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"id": 1, "owner_id": 7, "is_active": True, "version": 4,
                                         "definition": example_definition(), "webhook_token": "t"})

    queued = queue_run(redis_client, {"x": 1})  # no catalog at all, no ready marker
    workflows_client = httpx.Client(transport=httpx.MockTransport(workflows))
    rt = runtime(redis_client, echo_handler([]), workflows_client=workflows_client)

    Executor(rt).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    assert run.status == RunStatus.SUCCESS
    assert run.workflow_version == 4
    assert [r.url.path for r in asked] == ["/internal/v1/workflows/1"]
    assert asked[0].headers["X-AutomateOS-Internal"] == "secret"


class ShoutConfig(NodeConfig):
    text: str


class ShoutNode(Node):
    """A plugin defined outside the core: the engine runs it without knowing its name."""

    type = "shout"
    Config = ShoutConfig

    def run(self, ctx: NodeContext, config: BaseModel, input: Any) -> Any:
        assert isinstance(config, ShoutConfig)
        return {"text": config.text.upper(), "attempt": ctx.attempt}


class BrokenNode(Node):
    type = "broken"

    def run(self, ctx: NodeContext, config: BaseModel, input: Any) -> Any:
        raise KeyError("secret-detail-that-must-not-leak")


def test_plugin_nodes_run_and_a_crashing_node_is_recorded_without_its_internals(redis_client):
    registry = build_registry(entry_points_group=None)
    registry.register(ShoutNode, "test")
    registry.register(BrokenNode, "test")
    definition = {"nodes": [
        {"id": "t", "type": "webhook"},
        {"id": "s", "type": "shout", "config": {"text": "hi {{trigger.payload.name}}"}},
        {"id": "b", "type": "broken"},
    ]}
    publish(redis_client, definition)
    queued = queue_run(redis_client, {"name": "ada"})

    Executor(runtime(redis_client, echo_handler([]), registry=registry)).execute(queued.id)

    run = RunStore(redis_client).load(queued.id)
    steps = steps_by_id(run)
    assert steps["s"].output == {"text": "HI ADA", "attempt": 1}
    assert steps["b"].status == StepStatus.FAILED
    assert steps["b"].error == "internal error in node type 'broken' (KeyError)"
    assert "secret-detail" not in json.dumps(run.to_public())
    assert run.status == RunStatus.FAILED


def test_a_new_definition_under_a_reused_id_and_version_runs_as_written(redis_client):
    # SQLite may give a deleted workflow's id to the next one, whose version starts at 1 again: the
    # engine's plan cache must not hand the new workflow the old one's plan.
    rt = runtime(redis_client, echo_handler([]))
    for value in ("first", "second"):
        publish(redis_client, {"nodes": [{"id": "t", "type": "webhook"},
                                         {"id": "v", "type": "transform", "config": {"value": value}}]},
                workflow_id=5, version=1)
        queued = queue_run(redis_client, {}, workflow_id=5)
        run = Executor(rt).execute(queued.id)
        assert run is not None and run.status == RunStatus.SUCCESS and run.result == value
