"""Response modes: a `sync` webhook is answered when its run has ended, or with 202 at its timeout.

The trigger's `response` option (WebhookNode.webhook_options) is in the hook entry, so an `async`
webhook (the default) costs a dict lookup here and nothing else.

For a sync one, the run is accepted with `notify` set, and the engine announces it on
`runs.DONE_CHANNEL` (its id as the message) in the same MULTI/EXEC as the write that ends it or
parks it. The ingress holds ONE pub/sub connection to that channel (`RunWaiter.run`) and a future
per waiting run id, registered before the run is queued: hundreds of waiting webhooks share the
connection, and waiting takes no thread. An announcement only wakes its waiter up: the run's hash
is the truth, read after every wake-up and once more at the timeout. Announcements missed while
the subscription was down are covered: losing or (re)gaining it wakes every waiter, and while it is
down the waiters look every `poll_s` instead.

The answer (`sync_answer`, pure):
  success    `status_code` (200) with the output of `node` (else the run's result) as the JSON
             body; a node that did not run (skipped by a filter or a branch): `null`. An output
             above AUTOMATEOS_STEP_OUTPUT_MAX_BYTES is the history's marker (runs.history_value).
  failed / cancelled   502 RUN_FAILED in the error envelope, `details`: execution_id, status.
  anything else at the timeout (queued, running, waiting, paused): 202, as an async webhook,
             with the run's current status. A run that parks (`waiting`) until after the timeout
             is answered 202 at once.
Every answer carries `Location: /api/v1/logs/{id}` and `X-Execution-Id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from automateos_common.errors import RunFailedError
from automateos_common.fastredis import PipelinedRedis
from automateos_common.jsonutil import loads, parse_iso, utcnow
from automateos_common.queue import new_execution_id
from automateos_common.runs import DONE_CHANNEL, RunStatus, RunStore, StepStatus, history_value

from .listen import follow

log = logging.getLogger(__name__)

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, JSON body, headers (HookReply's fields)


@dataclass(slots=True)
class RunOutcome:
    """What a sync answer needs of a run: read from its hash (`RunWaiter.read`)."""

    status: RunStatus
    error_message: str | None = None
    resume_at: datetime | None = None
    output: Any = None  # the chosen node's output (or the run's result)


def run_headers(execution_id: str) -> list[tuple[bytes, bytes]]:
    return [(b"location", f"/api/v1/logs/{execution_id}".encode()), (b"x-execution-id", execution_id.encode())]


def sync_answer(execution_id: str, outcome: RunOutcome | None, response: dict[str, Any], *,
                output_limit: int) -> Answer:
    """The answer for a run in this state (None: its hash is gone, so nothing is known: 202)."""
    headers = run_headers(execution_id)
    if outcome is None or outcome.status not in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED):
        status = outcome.status.value if outcome is not None else RunStatus.QUEUED.value
        return 202, orjson.dumps({"execution_id": execution_id, "status": status}), headers
    if outcome.status == RunStatus.SUCCESS:
        body = orjson.dumps(history_value(outcome.output, output_limit))
        return int(response.get("status_code", 200)), body, headers
    what = "failed" if outcome.status == RunStatus.FAILED else "was cancelled"
    message = f"The run {what}" + (f": {outcome.error_message}" if outcome.error_message else "")
    raise RunFailedError(message, details={"execution_id": execution_id, "status": outcome.status.value},
                         headers={k.decode(): v.decode() for k, v in headers})


def _settled(outcome: RunOutcome | None, deadline_in_s: float) -> bool:
    """Nothing more to wait for: the run ended, or parked until after the timeout."""
    if outcome is None:
        return False
    if outcome.status in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PAUSED):
        return True
    if outcome.status == RunStatus.WAITING and outcome.resume_at is not None:
        return (outcome.resume_at - utcnow()).total_seconds() > deadline_in_s
    return False


class RunWaiter:
    """One pub/sub connection to DONE_CHANNEL and a future per waiting run (see the module's docstring)."""

    def __init__(self, redis_url: str, aredis: PipelinedRedis, *, output_limit: int, poll_s: float = 1.0) -> None:
        self.redis_url = redis_url
        self.aredis = aredis
        self.output_limit = output_limit
        self.poll_s = poll_s
        self.live = False  # subscribed: announcements are arriving
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.contextmanager
    def watching(self) -> Iterator[str]:
        """A new execution id, watched (before its run is queued) until the block ends, however it ends."""
        run_id = new_execution_id()
        self._waiting[run_id] = asyncio.get_running_loop().create_future()
        try:
            yield run_id
        finally:
            self._waiting.pop(run_id, None)

    def _wake(self, run_id: str) -> None:
        fut = self._waiting.get(run_id)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _wake_all(self) -> None:
        for run_id in list(self._waiting):
            self._wake(run_id)

    async def _look(self, run_id: str, node: str | None, known: RunOutcome | None) -> RunOutcome | None:
        """`read`, or what was known before when Redis fails: the run is queued, so the answer is never a 503."""
        try:
            return await self.read(run_id, node)
        except RedisError as exc:
            log.warning("run waiter: cannot read run %s (%s)", run_id, type(exc).__name__)
            return known

    async def read(self, run_id: str, node: str | None) -> RunOutcome | None:
        key = RunStore.key(run_id)
        meta, value = await self.aredis.execute("HMGET", key, "meta", f"step:{node}" if node else "result")
        if meta is None:
            return None
        m = loads(meta)
        outcome = RunOutcome(status=RunStatus(m["status"]), error_message=m.get("error_message"),
                             resume_at=parse_iso(m.get("resume_at")))
        if node is None:
            outcome.output = loads(value)
        elif value is not None:
            step = loads(value)
            outcome.output = step.get("output") if step.get("status") == StepStatus.SUCCESS.value else None
        return outcome

    async def answer(self, run_id: str, response: dict[str, Any],
                     gone: Callable[[], Awaitable[object]] | None = None) -> Answer:
        """Wait (at most `response["timeout_s"]`) for the watched run, then answer; the client leaving
        (`gone` returns) ends the wait: the run goes on, the answer reaches no one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(response.get("timeout_s", 10.0))
        node = response.get("node")
        gone_task = asyncio.ensure_future(gone()) if gone is not None else None
        outcome: RunOutcome | None = None
        try:
            while not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                fut = self._waiting[run_id]
                waits: set[asyncio.Future[Any]] = {fut} if gone_task is None else {fut, gone_task}
                await asyncio.wait(waits, timeout=remaining if self.live else min(remaining, self.poll_s),
                                   return_when=asyncio.FIRST_COMPLETED)
                if gone_task is not None and gone_task.done():
                    break
                if fut.done():
                    self._waiting[run_id] = loop.create_future()
                outcome = await self._look(run_id, node, outcome)
                if _settled(outcome, deadline - loop.time()):
                    return sync_answer(run_id, outcome, response, output_limit=self.output_limit)
            if not self._closed:  # the re-check at the timeout (an announcement may be late); closing: 202 now
                outcome = await self._look(run_id, node, outcome)
        finally:
            if gone_task is not None:
                gone_task.cancel()
        return sync_answer(run_id, outcome, response, output_limit=self.output_limit)

    def close(self) -> None:
        """Stop `run`; the waiting webhooks are answered now (202 unless their run has ended)."""
        self._closed = True
        self.live = False
        self._wake_all()

    async def run(self, *, retry_s: float = 1.0) -> None:
        """Listen for announcements until closed or cancelled; reconnect after a failure."""

        def subscribed() -> None:
            self.live = True
            self._wake_all()  # announcements may have been missed before: everyone looks

        def down() -> None:
            self.live = False
            self._wake_all()

        await follow(self.redis_url, DONE_CHANNEL, closed=lambda: self._closed, live=lambda: self.live,
                     subscribed=subscribed, message=self._wake, down=down, retry_s=retry_s,
                     lost="run waiter: run announcements lost; sync webhooks poll")
