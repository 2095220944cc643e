"""Test factories for the engine: catalog entries, queued runs, runtimes with a mock HTTP transport."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from redis import Redis

from automateos_common import catalog
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.queue import accept_run, make_queue
from automateos_common.runs import RunState
from automateos_engine.credentials import CredentialSource
from automateos_engine.definitions import DefinitionSource
from automateos_engine.driver import EngineConfig
from automateos_engine.executor import Runtime


def publish(redis: Redis, definition: dict[str, Any], *, workflow_id: int = 1, owner_id: int = 7,
            version: int = 1, ready: bool = True) -> None:
    with redis.pipeline() as pipe:
        catalog.publish(pipe, catalog.CatalogEntry(workflow_id=workflow_id, owner_id=owner_id, is_active=True,
                                                   version=version, definition=definition,
                                                   webhook_token=f"tok-{workflow_id}"))
        if ready:
            pipe.set(catalog.READY_KEY, "1")
        pipe.execute()


def queue_run(redis: Redis, payload: Any = None, *, workflow_id: int = 1, owner_id: int = 7) -> RunState:
    data = {"payload": payload, "headers": {"content-type": "application/json"}, "query": {}, "method": "POST"}
    return accept_run(redis, make_queue(redis, "test"), workflow_id=workflow_id, owner_id=owner_id,
                      trigger="webhook", trigger_data=data)


def echo_handler(calls: list[httpx.Request], status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = request.content.decode() or None
        return httpx.Response(status, json={"echo": body, "path": request.url.path})

    return handler


def runtime(redis: Redis, handler: Callable[[httpx.Request], httpx.Response], *,
            registry: NodeRegistry | None = None, workflows_client: httpx.Client | None = None,
            config: EngineConfig | None = None, credentials: CredentialSource | None = None) -> Runtime:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return Runtime(credentials=credentials,
        redis=redis, registry=registry or build_registry(entry_points_group=None),
        definitions=DefinitionSource(redis, "http://workflows.test", "secret", client=workflows_client),
        http_client=lambda: client, config=config or EngineConfig(heartbeat_s=0.05),
    )


def wait_for(check: Callable[[], Any], timeout: float, what: str, *, poll_s: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (returned); fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
