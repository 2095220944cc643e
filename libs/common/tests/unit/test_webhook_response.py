"""The webhook node's `response` (sync webhooks): its config, its hook options, the save-time check of `node`,
and the run announcement RunStore writes for a `notify` run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import ValidationError
from automateos_common.fastredis import CommandList
from automateos_common.nodes.builtin.webhook import SYNC_TIMEOUT_MAX_S, WebhookConfig, WebhookNode
from automateos_common.nodes.definition import validate_definition
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.runs import DONE_CHANNEL, RunState, RunStatus, RunStore


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry()


def test_async_is_the_default_and_publishes_no_option() -> None:
    assert WebhookConfig.model_validate({}).response.mode == "async"
    assert WebhookNode.webhook_options({"method": "POST"}) == {}
    assert WebhookNode.webhook_options({"response": {"mode": "async"}}) == {}


def test_a_sync_response_is_published_whole() -> None:
    assert WebhookNode.webhook_options({"response": {"mode": "sync", "node": "a"}}) == {
        "response": {"mode": "sync", "node": "a", "timeout_s": 10.0, "status_code": 200}}
    assert WebhookNode.webhook_options({"response": {"mode": "sync", "timeout_s": 2, "status_code": 201}}) == {
        "response": {"mode": "sync", "timeout_s": 2.0, "status_code": 201}}


@pytest.mark.parametrize("response", [
    {"mode": "wait"}, {"mode": "sync", "timeout_s": 0}, {"mode": "sync", "timeout_s": SYNC_TIMEOUT_MAX_S + 1},
    {"mode": "sync", "status_code": 202}, {"mode": "sync", "status_code": 204}, {"mode": "sync", "status_code": 404},
    {"mode": "sync", "extra": 1},
])
def test_bad_responses_are_refused(response: dict[str, Any]) -> None:
    with pytest.raises(PydanticValidationError):
        WebhookConfig.model_validate({"response": response})


def _definition(response: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook", "config": {"response": response}},
                      {"id": "each", "type": "loop", "config": {"items": "{{t.payload.items}}"}},
                      {"id": "inner", "type": "transform", "config": {"value": 1}},
                      {"id": "after", "type": "transform", "config": {"value": "{{each.results}}"}}],
            "connections": [{"from": "t", "to": "each"}, {"from": "each", "output": "each", "to": "inner"},
                            {"from": "each", "output": "done", "to": "after"}]}


@pytest.mark.parametrize(("response", "issue"), [
    ({"mode": "sync", "node": "nope"}, "no node with id 'nope'"),
    ({"mode": "sync", "node": "inner"}, "node 'inner' is in the body of loop 'each': it runs once per item"),
    ({"mode": "async", "node": "after"}, "only a sync response answers with a node's output; set mode to sync"),
])
def test_the_response_node_must_name_a_node_that_runs_once(registry: NodeRegistry, response: dict[str, Any],
                                                         issue: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(_definition(response), registry)
    assert excinfo.value.details is not None
    assert excinfo.value.details["errors"] == [{"field": "definition.nodes[0].config.response.node", "issue": issue}]


def test_a_response_node_that_runs_once_is_valid(registry: NodeRegistry) -> None:
    for node in ("t", "each", "after"):
        validate_definition(_definition({"mode": "sync", "node": node}), registry)


def _written(run: RunState) -> list[tuple[Any, ...]]:
    pipe = CommandList()
    RunStore.__new__(RunStore).write(pipe, run)
    return [c for c in pipe.commands if c[0] == "PUBLISH"]


@pytest.mark.parametrize(("status", "announced"), [
    (RunStatus.RUNNING, False), (RunStatus.WAITING, True), (RunStatus.SUCCESS, True), (RunStatus.FAILED, True),
    (RunStatus.CANCELLED, True), (RunStatus.PAUSED, False),
])
def test_a_notify_run_is_announced_when_it_ends_or_parks(status: RunStatus, announced: bool) -> None:
    run = RunState(id="r1", workflow_id=1, owner_id=1, trigger="webhook", status=status, notify=True)
    assert _written(run) == ([("PUBLISH", DONE_CHANNEL, "r1")] if announced else [])
    run.notify = False
    assert _written(run) == []  # every other run: not a byte more


def test_notify_survives_the_hash() -> None:
    run = RunState(id="r1", workflow_id=1, owner_id=1, trigger="webhook", notify=True)
    pipe = CommandList()
    RunStore.__new__(RunStore).write_new(pipe, run)
    hset = pipe.commands[0]
    raw = {k.encode(): v for k, v in zip(hset[2::2], hset[3::2], strict=True)}
    decoded = RunStore.decode(raw)
    assert decoded is not None and decoded.notify
    assert "notify" not in RunState(id="r2", workflow_id=1, owner_id=1, trigger="webhook").meta()
