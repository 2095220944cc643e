"""Retries, timeouts, idempotency keys and cancel/pause requests, against a real Redis."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from services.engine.tests.factories import publish, queue_run, runtime
from services.engine.tests.integration.test_graphs import by_key, node, registry

from automateos_common.lease import Leases
from automateos_common.runs import RunState, RunStatus, RunStore, StepStatus
from automateos_engine.driver import EngineConfig
from automateos_engine.executor import Executor

pytestmark = pytest.mark.integration


def scripted(*answers: tuple[int, dict[str, str]]) -> tuple[list[httpx.Request], Any]:
    """A remote API that answers with these (status, headers) in turn, then 200."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        status, headers = answers[len(calls) - 1] if len(calls) <= len(answers) else (200, {})
        return httpx.Response(status, headers=headers, json={"n": len(calls)})

    return calls, handler


def http_definition(retry: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    action: dict[str, Any] = node("call", "http_request", url="https://api.example/charge", method="POST",
                                  body={"amount": 5}, **config)
    if retry is not None:
        action["retry"] = retry
    return {"nodes": [node("t", "webhook"), action]}


def execute(redis: Any, definition: dict[str, Any], handler: Any, config: EngineConfig | None = None) -> RunState:
    publish(redis, definition)
    queued = queue_run(redis, {})
    Executor(runtime(redis, handler, registry=registry(), config=config)).execute(queued.id)
    run = RunStore(redis).load(queued.id)
    assert run is not None
    return run


def test_5xx_is_retried_with_backoff_and_every_attempt_is_recorded(redis_client):
    calls, handler = scripted((503, {}), (502, {}))
    started = time.monotonic()
    run = execute(redis_client, http_definition({"max_attempts": 4, "initial_s": 0.2, "on": ["5xx"]},
                                                 idempotency_key=True), handler)
    elapsed = time.monotonic() - started
    step = by_key(run)["call"]

    assert run.status == RunStatus.SUCCESS, run.error_message
    assert step.attempts == 3
    assert step.output["body"] == {"n": 3}
    assert [(a["attempt"], a["error_kind"], a["retry_in_s"]) for a in step.attempt_log] == [
        (1, "5xx", 0.2), (2, "5xx", 0.4), (3, None, None)]
    assert step.attempt_log[0]["error"].endswith("answered 503")
    assert elapsed >= 0.6
    # The same Idempotency-Key on every attempt: the API can tell they are one charge.
    keys = {c.headers["Idempotency-Key"] for c in calls}
    assert len(calls) == 3 and len(keys) == 1


def test_retry_after_is_honoured(redis_client):
    calls, handler = scripted((429, {"Retry-After": "1"}))
    started = time.monotonic()
    run = execute(redis_client, http_definition({"max_attempts": 2, "initial_s": 0.05}), handler)
    step = by_key(run)["call"]
    assert run.status == RunStatus.SUCCESS
    assert step.attempt_log[0]["retry_in_s"] == 1.0
    assert time.monotonic() - started >= 1.0
    assert len(calls) == 2


def test_errors_not_listed_in_on_are_not_retried(redis_client):
    calls, handler = scripted((503, {}))
    run = execute(redis_client, http_definition({"max_attempts": 3, "initial_s": 0.05, "on": ["429"]},
                                                 fail_on_status=True), handler)
    step = by_key(run)["call"]
    assert run.status == RunStatus.FAILED
    assert step.status == StepStatus.FAILED and step.attempts == 1 and step.error_kind == "5xx"
    assert len(calls) == 1
    assert run.error_message == "node 'call' failed: POST https://api.example/charge answered 503"


def test_when_attempts_run_out_the_step_fails_with_the_last_error(redis_client):
    calls, handler = scripted((500, {}), (500, {}), (500, {}))
    run = execute(redis_client, http_definition({"max_attempts": 2, "initial_s": 0.05, "backoff": "fixed"}),
                  handler)
    step = by_key(run)["call"]
    assert run.status == RunStatus.FAILED
    assert step.attempts == 2 and len(calls) == 2
    assert [a["retry_in_s"] for a in step.attempt_log] == [0.05, None]


def test_a_long_backoff_parks_the_run_instead_of_holding_the_worker(redis_client):
    calls, handler = scripted((503, {}))
    run = execute(redis_client, http_definition({"max_attempts": 3, "initial_s": 600, "max_s": 3600}), handler)
    step = by_key(run)["call"]
    assert len(calls) == 1
    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.WAITING and step.error_kind == "5xx"
    assert step.note == "attempt 1 failed; next attempt in 600s"
    assert run.resume_at == step.resume_at
    assert Leases(redis_client).due_at(run.id) == pytest.approx(run.resume_at.timestamp(), abs=0.01)


def test_a_node_timeout_fails_the_attempt_and_is_retried_as_a_timeout(redis_client):
    definition = {"nodes": [node("t", "webhook"),
                            {**node("slow", "sleep", seconds=1.0), "timeout_s": 0.2,
                             "retry": {"max_attempts": 2, "initial_s": 0.05, "on": ["timeout"]}}]}
    started = time.monotonic()
    run = execute(redis_client, definition, None)
    step = by_key(run)["slow"]
    assert run.status == RunStatus.FAILED
    assert step.attempts == 2
    assert step.error == "timed out after 0.2s" and step.error_kind == "timeout"
    assert time.monotonic() - started < 0.9  # not the node's full second, twice


def test_the_run_timeout_fails_a_run_that_takes_too_long(redis_client):
    definition = {"nodes": [node("t", "webhook"), node("slow", "sleep", seconds=3)], "settings": {"timeout_s": 0.3}}
    started = time.monotonic()
    run = execute(redis_client, definition, None)
    assert run.status == RunStatus.FAILED
    assert run.error_message == "the run timed out after 0.3s (settings.timeout_s)"
    assert by_key(run)["slow"].status == StepStatus.CANCELLED
    assert time.monotonic() - started < 1.5


def request_later(redis: Any, run_id: str, action: str, after_s: float) -> threading.Thread:
    def go() -> None:
        time.sleep(after_s)
        redis.hset(RunStore.key(run_id), "control", action)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_cancel_while_a_step_runs_cancels_the_run_within_a_heartbeat(redis_client):
    definition = {"nodes": [node("t", "webhook"), node("slow", "sleep", seconds=5),
                            node("after", "transform", value=1)]}
    publish(redis_client, definition)
    queued = queue_run(redis_client, {})
    request_later(redis_client, queued.id, "cancel", 0.3)
    started = time.monotonic()

    run = Executor(runtime(redis_client, None, registry=registry())).execute(queued.id)

    assert time.monotonic() - started < 1.5
    assert run.status == RunStatus.CANCELLED
    assert run.error_message == "cancelled by its owner"
    steps = by_key(run)
    assert steps["t"].status == StepStatus.SUCCESS
    assert steps["slow"].status == StepStatus.CANCELLED
    assert steps["after"].status == StepStatus.CANCELLED
    assert not redis_client.hexists(RunStore.key(run.id), "control")
    assert Leases(redis_client).due_at(run.id) is None


def test_pause_lets_running_steps_finish_then_resume_continues(redis_client):
    definition = {"nodes": [node("t", "webhook"), node("a", "sleep", seconds=0.5, value="a"),
                            node("b", "transform", value="{{a.value}}-b")]}
    publish(redis_client, definition)
    queued = queue_run(redis_client, {})
    request_later(redis_client, queued.id, "pause", 0.2)
    executor = Executor(runtime(redis_client, None, registry=registry()))

    paused = executor.execute(queued.id)

    steps = by_key(paused)
    assert paused.status == RunStatus.PAUSED
    assert steps["a"].status == StepStatus.SUCCESS  # it was running: it finished
    assert steps["b"].status == StepStatus.PENDING  # nothing new started
    assert Leases(redis_client).due_at(queued.id) is None  # nobody wakes a paused run

    # What the API's resume does: back to queued, and a new job (see automateos_common.control).
    store = RunStore(redis_client)
    paused.set_status(RunStatus.QUEUED)
    with redis_client.pipeline() as pipe:
        store.write(pipe, paused)
        pipe.execute()
    done = executor.execute(queued.id)
    assert done.status == RunStatus.SUCCESS
    assert by_key(done)["b"].output == "a-b"
    assert by_key(done)["a"].attempts == 1


def test_a_cancel_request_for_a_queued_run_is_applied_when_a_worker_picks_it_up(redis_client):
    publish(redis_client, {"nodes": [node("t", "webhook")]})
    queued = queue_run(redis_client, {})
    redis_client.hset(RunStore.key(queued.id), "control", "cancel")

    run = Executor(runtime(redis_client, None)).execute(queued.id)

    assert run.status == RunStatus.CANCELLED
    assert run.steps == []
