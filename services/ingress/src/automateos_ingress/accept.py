"""The hot path: resolve the target from the Redis catalog, write the run and its job, return.

The database is never touched here. Only when Redis has lost the catalog (no ready marker)
does a miss ask the workflows service, which also republishes the entry.

Both round trips go through a pipelining asyncio client (automateos_common.fastredis), so many
webhooks wait on Redis at once on the event loop, with no thread per request, and those of one
loop iteration share a write. The run and its RQ job are the very commands `accept_run` sends
(`submit_commands` records them; RQ's part once, as a JobTemplate), in one MULTI/EXEC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import orjson
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from automateos_common import catalog
from automateos_common.errors import MethodNotAllowedError, NotFoundError, NotOwnedError, ServiceUnavailableError
from automateos_common.fastredis import PipelinedRedis
from automateos_common.internal import INTERNAL_HEADER
from automateos_common.queue import JobTemplate, accept_run, new_run, submit_commands
from automateos_common.runs import RunState

from . import dedup
from .admission import Admission
from .hookauth import HookAuth, dropped_headers
from .hookcache import HookCache
from .payloads import HookRequest
from .respond import RunWaiter


@dataclass
class Acceptor:
    redis: Redis
    queue: Queue
    workflows_url: str
    internal_secret: str
    http: httpx.Client
    aredis: PipelinedRedis | None = None  # the hot path's client; None: everything goes through `redis`
    jobs: JobTemplate | None = None  # RQ's enqueue commands, recorded at the first webhook
    hooks: HookCache | None = None  # tokens looked up before, while their entries have not changed
    admission: Admission | None = None  # backpressure and rate limits; None: none
    auth: HookAuth | None = None  # webhook authentication (hookauth.py); None: one fetching from workflows
    waiter: RunWaiter | None = None  # sync webhooks wait here for their runs; None: every webhook is async

    def __post_init__(self) -> None:
        if self.auth is None:
            self.auth = HookAuth(self._hook_auth_record, self.hooks)

    def _ask_workflows(self, path: str) -> dict[str, Any] | None:
        try:
            resp = self.http.get(f"{self.workflows_url}/internal/v1/{path}",
                                 headers={INTERNAL_HEADER: self.internal_secret})
        except httpx.HTTPError:
            raise ServiceUnavailableError("Cannot resolve the workflow right now; retry shortly",
                                          headers={"Retry-After": "1"}) from None
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ServiceUnavailableError("Cannot resolve the workflow right now; retry shortly",
                                          headers={"Retry-After": "1"})
        data: dict[str, Any] = resp.json()
        return data

    def resolve_hook(self, token: str) -> catalog.HookTarget:
        target, authoritative = catalog.lookup_hook(self.redis, token)
        if target is None and not authoritative:
            data = self._ask_workflows(f"hooks/{token}")
            if data is not None:
                target = catalog.HookTarget(workflow_id=data["workflow_id"], owner_id=data["owner_id"],
                                            method=data["method"], options=data.get("options") or {})
        if target is None:
            raise NotFoundError("Unknown or inactive webhook")
        return target

    def resolve_owned(self, workflow_id: int, user_id: int) -> catalog.HookTarget:
        owner, authoritative = catalog.lookup_owner(self.redis, workflow_id)
        if owner is None and not authoritative:
            data = self._ask_workflows(f"workflows/{workflow_id}")
            owner = data["owner_id"] if data is not None else None
        if owner is None:
            raise NotFoundError("Workflow not found")
        if owner != user_id:  # someone else's is indistinguishable from none (and audited: access.denied)
            raise NotOwnedError("Workflow not found", resource="workflow", resource_id=workflow_id, owner_id=owner)
        return catalog.HookTarget(workflow_id=workflow_id, owner_id=user_id)

    def accept(self, target: catalog.HookTarget, trigger: str, data: dict[str, Any]) -> RunState:
        return accept_run(self.redis, self.queue, workflow_id=target.workflow_id, owner_id=target.owner_id,
                          trigger=trigger, trigger_data=data)

    def manual(self, workflow_id: int, user_id: int, data: dict[str, Any]) -> RunState:
        if self.admission is not None:
            self.admission.check_queue()
        try:
            return self.accept(self.resolve_owned(workflow_id, user_id), "manual", data)
        except RedisError:
            raise ServiceUnavailableError("Queue unavailable; retry shortly", headers={"Retry-After": "1"}) from None

    # ----------------------------------------------------------------- asyncio hot path

    async def _resolve_hook_async(self, token: str) -> catalog.HookTarget:
        assert self.aredis is not None
        if self.hooks is not None:
            known = self.hooks.get(token)
            if known is not None:
                return known
            generation = self.hooks.generation
        raw, ready = await self.aredis.execute("MGET", *catalog.hook_lookup_keys(token))
        target = catalog.parse_hook_value(raw)
        if target is None and ready is None:  # the catalog is gone: ask (rare, blocking: on a thread)
            return await anyio.to_thread.run_sync(self.resolve_hook, token)
        if target is None:
            raise NotFoundError("Unknown or inactive webhook")
        if self.hooks is not None:
            self.hooks.remember(token, target, generation)
        return target

    async def _hook_auth_record(self, token: str) -> dict[str, Any] | None:
        """The opened credential of the hook's `auth`, from the workflows service (rare, blocking: on a thread)."""
        return await anyio.to_thread.run_sync(self._ask_workflows, f"hooks/{token}/auth")

    async def _accept_async(self, target: catalog.HookTarget, trigger: str, data: dict[str, Any],
                            once: dedup.Once | None = None, *, execution_id: str | None = None,
                            notify: bool = False) -> RunState | dedup.Duplicate:
        assert self.aredis is not None
        run = new_run(workflow_id=target.workflow_id, owner_id=target.owner_id, trigger=trigger, trigger_data=data,
                      execution_id=execution_id, notify=notify)
        if self.jobs is None:  # once: RQ asks Redis its version (blocking), so on a thread
            self.jobs = await anyio.to_thread.run_sync(JobTemplate, self.queue)
        commands = submit_commands(self.redis, self.queue, run, self.jobs)
        assert not any(options for _, options in commands), "only plain commands are replayed"
        if once is not None:  # the same round trip: the commands run only for a delivery not seen before
            return await dedup.submit_once(self.aredis, once, run.id, [args for args, _ in commands]) or run
        await self.aredis.transaction([args for args, _ in commands])
        return run

    async def webhook_async(self, token: str, request: HookRequest) -> HookReply:
        """Answer a webhook: the steps in order, each of which may refuse it before anything is started."""
        assert self.aredis is not None, "webhooks need the asyncio client"
        try:
            target = await self._resolve_hook_async(token)
            if request.method != target.method:
                raise MethodNotAllowedError(f"This webhook answers to {target.method}",
                                            headers={"Allow": target.method})
            # Admission (backpressure, rate limits) goes here: cheap refusals before any work.
            if self.admission is not None:
                await self.admission.admit(target, request.client)
            # Authentication (the trigger's `auth` option) goes here: a refused request starts nothing.
            assert self.auth is not None
            await self.auth.check(token, target, request)  # before dedup: no probing or burning of keys
            data = request.trigger_data(dropped_headers(target.options.get("auth")))
            once = dedup.once_for(target, request)
            # Response modes: a `sync` trigger's run is watched from before it is queued (respond.py).
            sync = target.options.get("response")
            if sync is not None and self.waiter is not None:
                with self.waiter.watching() as run_id:
                    run = await self._accept_async(target, "webhook", data, once, execution_id=run_id, notify=True)
                    if isinstance(run, dedup.Duplicate):  # a repeated delivery is answered at once, not waited on
                        return HookReply.duplicate(run)
                    return HookReply(*await self.waiter.answer(run_id, sync, request.gone))
            run = await self._accept_async(target, "webhook", data, once)
            if isinstance(run, dedup.Duplicate):
                return HookReply.duplicate(run)
            return HookReply.accepted(run.id)
        except RedisError:
            raise ServiceUnavailableError("Queue unavailable; retry shortly", headers={"Retry-After": "1"}) from None


@dataclass(slots=True)
class HookReply:
    """What a webhook is answered: status, JSON body, headers beyond the JSON content type."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]

    @classmethod
    def accepted(cls, execution_id: str) -> HookReply:
        return cls(202, accepted_body(execution_id), [(b"location", f"/api/v1/logs/{execution_id}".encode())])

    @classmethod
    def duplicate(cls, first: dedup.Duplicate) -> HookReply:
        body = orjson.dumps({"execution_id": first.execution_id, "status": first.status, "duplicate": True})
        return cls(200, body, [(b"location", f"/api/v1/logs/{first.execution_id}".encode())])


def accepted_body(execution_id: str) -> bytes:
    return orjson.dumps({"execution_id": execution_id, "status": "queued"})
