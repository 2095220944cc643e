"""Picking a run up: its lease, its pinned definition, and handing it to the driver.

It never names a node type: nodes come from the registry and the driver (driver.py) follows the
graph. A worker holds a run only with its lease (automateos_common.lease), renewed by a
heartbeat thread that also watches for a cancel or pause request. Every state change is in Redis
at once, so a run picked up again after a crash continues from its first unfinished step;
finished steps are not run again. A run found `running` at pick-up was interrupted (its worker
died); after `max_interruptions` of those it fails instead of taking more workers down with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import RedisError

from automateos_common import catalog
from automateos_common.catalog import CatalogEntry
from automateos_common.control import CANCELLED_MESSAGE
from automateos_common.errors import NodeExecutionError, ValidationError
from automateos_common.fastredis import CommandList, LeanRedis, RedisPyCommands
from automateos_common.jsonutil import dumps, utcnow
from automateos_common.lease import Leases
from automateos_common.nodes.base import NodeContext
from automateos_common.nodes.definition import Plan, validate_definition
from automateos_common.nodes.registry import NodeRegistry
from automateos_common.runs import RunState, RunStatus, RunStore, StepState, StepStatus

from .credentials import CredentialSource
from .definitions import DefinitionSource
from .driver import EngineConfig, RunDriver, Stop

log = logging.getLogger(__name__)

INTERRUPTIONS_FIELD = "interruptions"
CONTROL_FIELD = "control"
# After an unexpected error in the engine itself, look at the run again this much later.
CRASH_RETRY_S = 5.0
_PLAN_CACHE_SIZE = 256
# Per registry (a weak key: a registry that is gone takes its plans with it), by the definition's content.
_PLANS: weakref.WeakKeyDictionary[NodeRegistry, dict[bytes, Plan]] = weakref.WeakKeyDictionary()


@dataclass
class Runtime:
    """What a run needs from its process: connections, the node registry, an HTTP client, limits.

    `lean` carries the run's own round trips (pick-up, each round's write, release); it is made for
    `redis`'s server when not given (automateos_common.fastredis.LeanRedis)."""

    redis: Redis
    registry: NodeRegistry
    definitions: DefinitionSource
    http_client: Callable[[], httpx.Client]
    config: EngineConfig = field(default_factory=EngineConfig)
    lean: LeanRedis | RedisPyCommands | None = None
    credentials: CredentialSource | None = None  # None: nodes that name a credential fail their step

    def __post_init__(self) -> None:
        if self.lean is None:
            self.lean = LeanRedis.for_client(self.redis)

    @property
    def commands(self) -> LeanRedis | RedisPyCommands:
        assert self.lean is not None
        return self.lean


class LeaseKeeper:
    """Keeps the run's lease and reads its pending control request, from the driver's own rounds.

    The driver never blocks longer than `interval` (its waits are bounded by it), so renewing on
    its rounds needs no thread: one pipelined round trip (renew + read `control`) every `interval`.
    """

    def __init__(self, lean: LeanRedis | RedisPyCommands, leases: Leases, run_id: str, token: str, lease_s: float,
                 interval: float) -> None:
        self.lean, self.leases, self.run_id, self.token = lean, leases, run_id, token
        self.lease_s, self.interval = lease_s, interval
        self.lost = False
        self.control: str | None = None
        self._next = time.monotonic() + interval

    def tick(self) -> None:
        if self.lost or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval
        pipe = CommandList()
        self.leases.renew(self.run_id, self.token, self.lease_s, pipe=pipe)
        pipe.hget(RunStore.key(self.run_id), CONTROL_FIELD)
        try:
            renewed, raw = self.lean.pipeline(pipe.commands)
        except (RedisError, OSError) as exc:
            log.warning("run %s: lease renewal failed (%s); retrying", self.run_id, exc)
            return
        if not renewed:
            log.error("run %s: lease lost (another worker took the run over); stopping", self.run_id)
            self.lost = True
        self.control = raw.decode() if isinstance(raw, bytes) else None

    def state(self) -> str | None:
        self.tick()
        return "lost" if self.lost else self.control


@dataclass
class _Release:
    """Whether the lease went back with the run's last write, and whether a request was waiting then.
    `extra` adds commands to the release's round trip, once (the worker's end-of-job bookkeeping)."""

    done: bool = False
    control_pending: bool = False
    extra: Callable[[CommandList], None] | None = None

    def add_extra(self, pipe: CommandList) -> None:
        if self.extra is not None:
            self.extra(pipe)
            self.extra = None


def lease_token() -> str:
    """Who holds a lease: host, process, and a nonce per pick-up."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Taken:
    """A pick-up already made (the engine worker's dequeue takes the run's lease in its round trip):
    the token it used and the answers of `Leases.acquire_and_read`."""

    token: str
    answers: list[Any]


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    """A hash as a script returns it (a flat list) as HGETALL's dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


class Executor:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cfg = runtime.config
        self.store = RunStore(runtime.redis)
        self.leases = Leases(runtime.redis)

    # ----------------------------------------------------------------- persistence

    def _save(self, run: RunState, steps: list[StepState], *, order: bool = False, result: bool = False,
              definition: bool = False, clear_control: bool = False,
              release: tuple[str, float | None, _Release] | None = None) -> None:
        """One MULTI/EXEC; with `release` (token, due, outcome) the lease goes back in the same round trip."""
        pipe = CommandList()
        self.store.write(pipe, run, steps=steps, order=order, result=result, definition=definition)
        if clear_control:
            pipe.hdel(self.store.key(run.id), CONTROL_FIELD)
        if release is not None:
            self.leases.release(run.id, release[0], due_at=release[1], pipe=pipe)
            release[2].add_extra(pipe)
            pipe.hexists(self.store.key(run.id), CONTROL_FIELD)
        answers = self.rt.commands.pipeline(pipe.commands, transaction=True)
        if release is not None:
            release[2].done, release[2].control_pending = True, bool(answers[-1])

    def _release(self, run_id: str, token: str, due: float | None, outcome: _Release) -> None:
        pipe = CommandList()
        self.leases.release(run_id, token, due_at=due, pipe=pipe)
        outcome.add_extra(pipe)
        pipe.hexists(self.store.key(run_id), CONTROL_FIELD)
        answers = self.rt.commands.pipeline(pipe.commands)
        outcome.done, outcome.control_pending = True, bool(answers[-1])

    def _fail_run(self, run: RunState, message: str) -> None:
        now = utcnow()
        run.started_at = run.started_at or now
        run.set_status(RunStatus.FAILED)
        run.error_message = message
        run.completed_at = now
        run.resume_at = None
        closed = []
        for step in run.steps:
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.set_status(StepStatus.SKIPPED if step.status == StepStatus.PENDING else StepStatus.CANCELLED)
            elif step.status == StepStatus.WAITING:
                step.set_status(StepStatus.CANCELLED)
            else:
                continue
            closed.append(step)
        self._save(run, closed, result=True)

    # ----------------------------------------------------------------- pick-up

    def execute(self, execution_id: str, *, taken: Taken | None = None,
                on_pickup: Callable[[CommandList], None] | None = None,
                on_release: Callable[[CommandList], None] | None = None) -> RunState | None:
        """Run (or continue) a run if nobody else holds it; returns its state when this call let go.

        `taken`: the first pick-up was already made (by the worker's dequeue). `on_pickup` and
        `on_release` add commands to the round trips that take and give back the run's lease (the
        worker's own bookkeeping of the job); each runs at most once, `on_pickup` not at all with
        `taken`, and `on_release` not at all when the lease was never taken or was lost."""
        token = taken.token if taken is not None else lease_token()
        run: RunState | None = None
        for _ in range(3):  # a control request that arrived just as we let go is applied at once
            if taken is not None:
                acquired, run_flat, entry_flat, ready = taken.answers
                taken = None
            else:
                pipe = CommandList()  # lease, run and its workflow: one round trip
                self.leases.acquire_and_read(execution_id, token, self.cfg.lease_s,
                                             run_key=self.store.key(execution_id),
                                             catalog_prefix=catalog.WF_KEY.format(""), ready_key=catalog.READY_KEY,
                                             pipe=pipe)
                if on_pickup is not None:
                    on_pickup(pipe)
                    on_pickup = None
                (acquired, run_flat, entry_flat, ready), *_ = self.rt.commands.pipeline(pipe.commands)
            run = RunStore.decode(_pairs(run_flat))
            catalog_read = None
            if run is not None and (entry_flat or ready):  # read by the script (absent: ask as before)
                catalog_read = (catalog.entry_from_hash(run.workflow_id, _pairs(entry_flat)), bool(ready))
            if not acquired:
                log.info("run %s is held by another worker; nothing to do", execution_id)
                return run
            keeper = LeaseKeeper(self.rt.commands, self.leases, execution_id, token, self.cfg.lease_s,
                                 self.cfg.heartbeat_s)
            released = _Release(extra=on_release)
            on_release = None
            due: float | None = None
            try:
                if run is not None:
                    keeper.control = run.control
                    resume_at = self._pick_up(run, keeper, token, released, catalog_read)
                    due = resume_at.timestamp() if resume_at is not None else None
            except Stop:
                return run
            except Exception:
                due = time.time() + CRASH_RETRY_S  # the reaper brings it back; RQ records this failure
                raise
            finally:
                if not keeper.lost and not released.done:
                    self._release(execution_id, token, due, released)
            if run is None or run.is_terminal or not released.control_pending:
                return run
        return run

    def _pick_up(self, run: RunState, keeper: LeaseKeeper, token: str, released: _Release,
                 catalog_read: tuple[CatalogEntry | None, bool] | None = None) -> Any:
        """Returns when the run needs a worker again (a datetime) or None."""
        if run.is_terminal or run.status == RunStatus.PAUSED:
            return None
        if run.status == RunStatus.WAITING and run.control is None and run.resume_at is not None \
                and (run.resume_at - utcnow()).total_seconds() > self.cfg.delay_inline_max_s:
            return run.resume_at  # woken early (a duplicate job): keep waiting
        if run.status == RunStatus.RUNNING:
            interruptions = int(self.rt.redis.hincrby(self.store.key(run.id), INTERRUPTIONS_FIELD, 1))
            log.warning("run %s was interrupted (its worker stopped mid-run); continuing it (%d)", run.id,
                        interruptions)
            if interruptions >= self.cfg.max_interruptions:
                self._fail_run(run, f"the run was interrupted {interruptions} times (its worker crashed or "
                                    "was killed while running it); giving up")
                return None

        pinned = run.definition is not None
        if not pinned:
            entry = self.rt.definitions.get(run.workflow_id, read=catalog_read)
            keeper.tick()  # the workflows service may have been slow to answer
            if entry is None:
                if run.control == "cancel":
                    return self._cancel_before_start(run)
                self._fail_run(run, "the workflow no longer exists")
                return None
            run.definition = entry.definition
            run.workflow_version = entry.version
        assert run.definition is not None
        try:
            plan = self._plan(run)
        except ValidationError as exc:
            d = exc.details or {}
            self._fail_run(run, f"the workflow definition is invalid: {d.get('field')}: {d.get('issue')}")
            return None

        if run.control == "cancel" and run.status == RunStatus.QUEUED:
            return self._cancel_before_start(run)
        if run.status != RunStatus.RUNNING:
            run.set_status(RunStatus.RUNNING)
        run.started_at = run.started_at or utcnow()
        run.resume_at = None

        def persist(steps: list[StepState], *, order: bool, result: bool, definition: bool, clear_control: bool,
                    release: bool = False, due: float | None = None) -> None:
            if keeper.lost:
                raise Stop
            self._save(run, steps, order=order, result=result, definition=definition, clear_control=clear_control,
                       release=(token, due, released) if release else None)

        def credential(ref: int | str) -> Any:
            if self.rt.credentials is None:
                raise NodeExecutionError("this engine has no credential source configured")
            return self.rt.credentials.open(run.owner_id, ref)

        def node_context(**kwargs: Any) -> NodeContext:
            return NodeContext(execution_id=run.id, workflow_id=run.workflow_id, trigger=run.trigger_data,
                               http_client=self.rt.http_client, credentials=credential, **kwargs)

        driver = RunDriver(run=run, plan=plan, config=self.cfg, persist=persist, node_context=node_context,
                           control=keeper.state)
        driver.mark_started(definition=not pinned)
        driver.prepare()
        return driver.drive()

    def _plan(self, run: RunState) -> Plan:
        """The run's plan; validating a definition is the costliest part of a pick-up, so plans are kept
        per registry and definition, by a digest of the definition's JSON: a workflow's id and version do
        not name one definition for good (SQLite may give a deleted workflow's id to a new one)."""
        assert run.definition is not None
        key = hashlib.blake2b(dumps(run.definition), digest_size=16).digest()
        plans = _PLANS.setdefault(self.rt.registry, {})
        plan = plans.get(key)
        if plan is None:
            plan = validate_definition(run.definition, self.rt.registry)
            if len(plans) >= _PLAN_CACHE_SIZE:
                plans.pop(next(iter(plans)))
            plans[key] = plan
        return plan

    def _cancel_before_start(self, run: RunState) -> None:
        now = utcnow()
        run.set_status(RunStatus.CANCELLED)
        run.error_message = CANCELLED_MESSAGE
        run.started_at = run.started_at or now
        run.completed_at = now
        self._save(run, [], clear_control=True)
        return None
