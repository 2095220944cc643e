"""`sync` webhooks on a real Redis: the ingress waits for the run's end, announced by the very write the
engine makes (RunStore.write, here called by the test in the engine's place), and answers with its output;
a missed announcement is found by the re-check; the timeout, a failure, a disconnect, many at once, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis import Redis

from automateos_common import catalog
from automateos_common.runs import RunState, RunStatus, RunStore, StepState, StepStatus
from automateos_ingress.accept import Acceptor
from automateos_ingress.main import create_app
from automateos_ingress.payloads import HookRequest
from automateos_ingress.settings import IngressSettings, get_settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

OUTPUT = {"answer": 42, "items": ["a", "b"]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _hook(pipe: Any, wf: int, token: str, response: dict[str, Any] | None) -> None:
    catalog.publish(pipe, catalog.CatalogEntry(
        workflow_id=wf, owner_id=7, is_active=True, version=1, definition={}, webhook_token=token,
        webhook_method="POST", webhook_options={"response": response} if response else {}))


@pytest.fixture
def env(redis_client: Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Redis:
    kw = redis_client.connection_pool.connection_kwargs
    for k, v in {"REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}", "AUTOMATEOS_DATA_DIR": str(tmp_path),
                 "AUTOMATEOS_QUEUE_NAME": "sync-test", "AUTOMATEOS_WORKFLOWS_URL": "http://127.0.0.1:9",
                 "AUTOMATEOS_STEP_OUTPUT_MAX_BYTES": "1024"}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    with redis_client.pipeline() as pipe:
        _hook(pipe, 1, "node", {"mode": "sync", "node": "shape", "timeout_s": 10, "status_code": 201})
        _hook(pipe, 2, "result", {"mode": "sync", "timeout_s": 10})
        _hook(pipe, 3, "short", {"mode": "sync", "timeout_s": 0.5})
        _hook(pipe, 4, "async", None)
        pipe.set(catalog.READY_KEY, "1")
        pipe.execute()
    yield redis_client
    get_settings.cache_clear()


async def _live(app: Any) -> None:
    waiter = app.state.acceptor.waiter
    for _ in range(200):
        if waiter.live:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run waiter never subscribed")


@pytest.fixture(params=["fast", "fastapi"])
async def client(env: Redis, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(IngressSettings(), fast_webhooks=request.param == "fast")
    async with app.router.lifespan_context(app):
        await _live(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress.test") as c:
            c.app, c.test_redis = app, env  # type: ignore[attr-defined]
            yield c


async def _waiting_ids(client: httpx.AsyncClient, n: int = 1) -> list[str]:
    """The runs of `n` waiting webhooks, once they are queued (they are watched from before)."""
    waiter = client.app.state.acceptor.waiter  # type: ignore[attr-defined]
    redis: Redis = client.test_redis  # type: ignore[attr-defined]
    for _ in range(500):
        ids = list(waiter._waiting)
        if len(ids) >= n and all(redis.exists(RunStore.key(i)) for i in ids):
            return ids
        await asyncio.sleep(0.01)
    raise AssertionError(f"{waiter.waiting} webhooks waiting, expected {n}")


def _end(redis: Redis, run_id: str, status: RunStatus = RunStatus.SUCCESS, *, output: Any = OUTPUT,
         step: StepStatus = StepStatus.SUCCESS, announce: bool = True, error: str | None = None) -> RunState:
    """What the engine writes when a run ends (RunStore.write: the announcement included)."""
    store = RunStore(redis)
    run = store.load(run_id)
    assert run is not None and run.notify, "a sync webhook's run is accepted with `notify`"
    run.set_status(RunStatus.RUNNING)
    run.set_status(status)
    run.steps = [StepState(node_id="shape", type="transform", position=0, status=step,
                           output=output if step == StepStatus.SUCCESS else None)]
    run.result, run.error_message = output, error
    if not announce:
        run.notify = False  # the same write without its announcement: as if the message were lost
    with redis.pipeline(transaction=True) as pipe:
        store.write(pipe, run, steps=run.steps, order=True, result=True)
        pipe.execute()
    return run


async def test_the_announced_end_answers_with_the_nodes_output(client, env):
    call = asyncio.create_task(client.post("/hooks/node", json={"q": 1}))
    [run_id] = await _waiting_ids(client)
    assert env.llen("rq:queue:sync-test") == 1  # queued as any webhook's run
    _end(env, run_id)
    r = await asyncio.wait_for(call, 5)
    assert r.status_code == 201, r.text
    assert r.json() == OUTPUT
    assert r.headers["x-execution-id"] == run_id and r.headers["location"] == f"/api/v1/logs/{run_id}"
    assert r.headers["content-type"] == "application/json"
    assert client.app.state.acceptor.waiter.waiting == 0  # type: ignore[attr-defined]


async def test_without_a_node_the_answer_is_the_runs_result(client, env):
    call = asyncio.create_task(client.post("/hooks/result", json={}))
    [run_id] = await _waiting_ids(client)
    _end(env, run_id, output="plain text")
    r = await asyncio.wait_for(call, 5)
    assert (r.status_code, r.json()) == (200, "plain text")  # a string output: a JSON string


async def test_a_node_that_did_not_run_answers_null(client, env):
    call = asyncio.create_task(client.post("/hooks/node", json={}))
    [run_id] = await _waiting_ids(client)
    _end(env, run_id, step=StepStatus.SKIPPED)
    r = await asyncio.wait_for(call, 5)
    assert (r.status_code, r.content) == (201, b"null")


async def test_an_output_over_the_history_limit_answers_the_marker(client, env):
    call = asyncio.create_task(client.post("/hooks/node", json={}))
    [run_id] = await _waiting_ids(client)
    _end(env, run_id, output={"big": "x" * 2000})
    body = (await asyncio.wait_for(call, 5)).json()
    assert body["_truncated"] is True and body["limit_bytes"] == 1024 and body["size_bytes"] > 2000


async def test_a_missed_announcement_is_found_by_the_recheck_at_the_timeout(client, env):
    call = asyncio.create_task(client.post("/hooks/short", json={}))
    [run_id] = await _waiting_ids(client)
    _end(env, run_id, announce=False)
    r = await asyncio.wait_for(call, 5)
    assert (r.status_code, r.json()) == (200, OUTPUT)


async def test_the_timeout_answers_202_with_the_current_status(client, env):
    r = await client.post("/hooks/short", json={})
    assert r.status_code == 202
    run_id = r.headers["x-execution-id"]
    assert r.json() == {"execution_id": run_id, "status": "queued"}
    assert r.headers["location"] == f"/api/v1/logs/{run_id}"


@pytest.mark.parametrize(("status", "what"), [(RunStatus.FAILED, "failed"), (RunStatus.CANCELLED, "was cancelled")])
async def test_a_run_that_did_not_succeed_is_a_502_in_the_envelope(client, env, status, what):
    call = asyncio.create_task(client.post("/hooks/node", json={}))
    [run_id] = await _waiting_ids(client)
    _end(env, run_id, status, step=StepStatus.FAILED, error="shape: boom")
    r = await asyncio.wait_for(call, 5)
    assert r.status_code == 502, r.text
    assert r.json() == {"error": {"code": "RUN_FAILED", "message": f"The run {what}: shape: boom",
                                  "details": {"execution_id": run_id, "status": status.value}}}
    assert r.headers["x-execution-id"] == run_id and r.headers["location"] == f"/api/v1/logs/{run_id}"


async def test_an_async_webhook_is_not_announced(client, env):
    r = await client.post("/hooks/async", json={})
    assert r.status_code == 202 and "x-execution-id" not in r.headers
    run = RunStore(env).load(r.json()["execution_id"])
    assert run is not None and not run.notify
    assert b"notify" not in env.hget(RunStore.key(run.id), "meta")  # type: ignore[operator]


async def test_many_sync_webhooks_share_one_connection(client, env):
    assert (await client.post("/hooks/async", json={})).status_code == 202  # the first webhook's set-up done
    before = len(env.client_list())
    calls = [asyncio.create_task(client.post("/hooks/result", json={"i": i})) for i in range(200)]
    ids = await _waiting_ids(client, 200)
    assert len(env.client_list()) <= before + 1  # no connection per waiting request
    for run_id in ids:
        _end(env, run_id, output=run_id)
    answers = await asyncio.wait_for(asyncio.gather(*calls), 20)
    assert sorted(r.json() for r in answers) == sorted(ids)
    assert all(r.status_code == 200 and r.json() == r.headers["x-execution-id"] for r in answers)


async def test_a_client_that_leaves_stops_the_wait(env):
    app = create_app(IngressSettings())
    async with app.router.lifespan_context(app):
        await _live(app)
        acceptor: Acceptor = app.state.acceptor
        assert acceptor.waiter is not None
        left = asyncio.Event()

        async def gone() -> None:
            await left.wait()

        request = HookRequest(method="POST", headers=[], query=[], body=b"{}", gone=gone)
        task = asyncio.create_task(acceptor.webhook_async("node", request))
        while acceptor.waiter.waiting == 0:
            await asyncio.sleep(0.01)
        left.set()
        reply = await asyncio.wait_for(task, 2)  # well before the 10 s timeout
        assert reply.status == 202 and acceptor.waiter.waiting == 0

        task = asyncio.create_task(acceptor.webhook_async("node", HookRequest("POST", [], [], b"{}")))
        while acceptor.waiter.waiting == 0:
            await asyncio.sleep(0.01)
        task.cancel()  # the server dropped the request
        with pytest.raises(asyncio.CancelledError):
            await task
        assert acceptor.waiter.waiting == 0


async def test_shutdown_answers_the_waiting_webhooks(env):
    app = create_app(IngressSettings())
    async with app.router.lifespan_context(app):
        await _live(app)
        acceptor: Acceptor = app.state.acceptor
        task = asyncio.create_task(acceptor.webhook_async("node", HookRequest("POST", [], [], b"{}")))
        while acceptor.waiter is not None and acceptor.waiter.waiting == 0:
            await asyncio.sleep(0.01)
    reply = await asyncio.wait_for(task, 2)
    assert reply.status == 202


async def test_a_repeated_delivery_of_a_sync_webhook_is_answered_at_once_with_the_first_run(client, env):
    first = asyncio.create_task(client.post("/hooks/node", json={"q": 1}, headers={"Idempotency-Key": "d-1"}))
    [run_id] = await _waiting_ids(client)
    again = await asyncio.wait_for(client.post("/hooks/node", json={"q": 1}, headers={"Idempotency-Key": "d-1"}), 5)
    assert again.status_code == 200, again.text
    assert again.json() == {"execution_id": run_id, "status": "queued", "duplicate": True}
    assert env.llen("rq:queue:sync-test") == 1  # nothing new started
    assert client.app.state.acceptor.waiter.waiting == 1  # type: ignore[attr-defined]  # only the first waits
    _end(env, run_id)
    r = await asyncio.wait_for(first, 5)
    assert (r.status_code, r.json()) == (201, OUTPUT)
