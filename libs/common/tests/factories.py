"""Factories for the common library's tests (imported as `libs.common.tests.factories`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from automateos_common.nodes.base import NodeContext
from automateos_devstack.testing import example_definition

API_EXAMPLE_DEFINITION: dict[str, Any] = example_definition()  # API.md's, verbatim


def trigger_data(payload: Any = None, *, method: str = "POST") -> dict[str, Any]:
    """What a webhook call hands to a run: payload, headers, query, method."""
    return {"payload": payload if payload is not None else {}, "headers": {"content-type": "application/json"},
            "query": {}, "method": method}


def node_context(*, handler: Callable[[httpx.Request], httpx.Response] | None = None,
                 http_client: Callable[[], httpx.Client] | None = None, trigger: dict[str, Any] | None = None,
                 scope: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
                 node_id: str = "node-1") -> NodeContext:
    """A NodeContext; with `handler`, http() returns a client over httpx.MockTransport(handler)."""
    trigger = trigger if trigger is not None else trigger_data()
    if handler is not None:
        def http_client() -> httpx.Client:
            return httpx.Client(transport=httpx.MockTransport(handler))
    return NodeContext(
        execution_id="exec-1", workflow_id=1, node_id=node_id, trigger=trigger,
        scope=scope if scope is not None else {"trigger": trigger}, outputs=outputs if outputs is not None else {},
        http_client=http_client,
    )


@dataclass
class LocalServer:
    """A real HTTP server on a loopback address (the `start_server` fixture); records request paths."""

    host: str
    port: int = 0
    paths: list[str] = field(default_factory=list)
    redirect_to: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
