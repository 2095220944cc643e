"""Run and step state: the model, the allowed transitions (as data), and their home in Redis.

A run lives in the Redis hash `aos:run:{id}` from the moment it is accepted (status `queued`)
until the workflows service has recorded its final state in the database. Every change bumps
`rev` and appends the run id to the stream `aos:events`; the recorder in the workflows service
reads that stream and upserts the database (newer `rev` wins), so the API finds a run at once
(from Redis) and for good (from the database).

    hash aos:run:{id}
      meta      JSON: id, workflow_id, owner_id, status, trigger, error_message, times, workflow_version
      payload   JSON: the trigger payload
      trigger   JSON: the full trigger data (payload, headers, query, method)
      result    JSON: output of the last node that ran
      order     JSON: step keys in execution order
      step:<key> JSON: one step; the key is the node id, or `node[i]` for iteration i of a loop body
      definition JSON: the definition the run started with (a resumed run keeps following it)
      control   "cancel" | "pause" while such a request waits for the worker that holds the run
      rev       integer, bumped on every write

A run whose trigger waits for it (a `sync` webhook: `notify` in its meta, set when it is accepted)
is announced on the channel `aos:run:done` (the message: its id) in the same MULTI/EXEC as every
write that ends it or parks it (`waiting`): `RunStore.write` does it, so every path that ends a
run (success, failure, cancel, a recovered run's end) announces it. Other runs cost nothing more.

Steps keep their full output here while the run lives; what the API and the database show is
cut to `history_value(...)` (a marker with the size and a preview), so a big output is never
lost to the nodes after it, only shortened in history.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from .fastredis import CommandList
from .jsonutil import dumps, isoformat, loads, parse_iso, utcnow

RUN_KEY = "aos:run:{}"
EVENTS_STREAM = "aos:events"
DONE_CHANNEL = "aos:run:done"  # a `notify` run's id, when it ends or parks (see the module's docstring)


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # parked until `resume_at` (a delay, or a retry's long back-off); holds no worker
    PAUSED = "paused"  # stopped by its owner between steps; `resume` queues it again
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # a delay, or the back-off before the next attempt; see `resume_at`
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL_RUN = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})
# The states a `notify` run is announced in (DONE_CHANNEL): its end, or a park its waiter may not outlast.
ANNOUNCED_RUN = TERMINAL_RUN | {RunStatus.WAITING}

# Allowed transitions, checked in one place (`RunState.set_status`, `StepState.set_status`).
# running -> running is a resume after a worker died mid-run.
_RS = RunStatus
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    _RS.QUEUED: frozenset({_RS.RUNNING, _RS.PAUSED, _RS.FAILED, _RS.CANCELLED}),
    _RS.RUNNING: frozenset({_RS.RUNNING, _RS.WAITING, _RS.PAUSED, _RS.SUCCESS, _RS.FAILED, _RS.CANCELLED}),
    _RS.WAITING: frozenset({_RS.RUNNING, _RS.PAUSED, _RS.FAILED, _RS.CANCELLED}),
    # paused -> queued is `resume`: the run is put on the queue again and continues where it stopped.
    _RS.PAUSED: frozenset({_RS.QUEUED, _RS.CANCELLED}),
    _RS.SUCCESS: frozenset(),
    _RS.FAILED: frozenset(),
    _RS.CANCELLED: frozenset(),
}
_SS = StepStatus
STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    _SS.PENDING: frozenset({_SS.RUNNING, _SS.SKIPPED, _SS.CANCELLED}),
    # running -> running: a worker died in the step and another runs it again (attempt + 1).
    _SS.RUNNING: frozenset({_SS.RUNNING, _SS.WAITING, _SS.SUCCESS, _SS.FAILED, _SS.SKIPPED, _SS.CANCELLED}),
    _SS.WAITING: frozenset({_SS.RUNNING, _SS.SUCCESS, _SS.FAILED, _SS.CANCELLED}),
    _SS.SUCCESS: frozenset(),
    _SS.FAILED: frozenset(),
    _SS.SKIPPED: frozenset(),
    _SS.CANCELLED: frozenset(),
}
TERMINAL_STEP = frozenset({_SS.SUCCESS, _SS.FAILED, _SS.SKIPPED, _SS.CANCELLED})

TRUNCATED_MARKER = "_truncated"


def history_value(value: Any, limit: int) -> Any:
    """`value` as history shows it: itself when its JSON is at most `limit` bytes, else a marker.

    The marker is `{"_truncated": true, "size_bytes": N, "limit_bytes": L, "preview": "<first
    1 KiB of the JSON text>"}`; the run itself kept the whole value for the nodes after it.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    raw = dumps(value)
    if len(raw) <= limit:
        return value
    return {TRUNCATED_MARKER: True, "size_bytes": len(raw), "limit_bytes": limit,
            "preview": raw[:1024].decode("utf-8", errors="ignore")}


def is_truncated(value: Any) -> bool:
    return isinstance(value, dict) and value.get(TRUNCATED_MARKER) is True


class InvalidTransition(RuntimeError):
    pass


def step_key(node_id: str, iteration: int | None = None) -> str:
    """A step's key in a run: the node id, or `node[i]` for iteration i of a loop's body."""
    return node_id if iteration is None else f"{node_id}[{iteration}]"


@dataclass
class StepState:
    node_id: str
    type: str
    position: int
    status: StepStatus = StepStatus.PENDING
    input: Any = None
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    note: str | None = None  # what the node decided, e.g. "condition false; run stopped here"
    iteration: int | None = None  # which item of its loop this step ran for (body nodes only)
    loop: str | None = None  # the loop node whose body this step belongs to
    branch: str | None = None  # the named output the node took (`true`, a switch case); None: all
    resume_at: datetime | None = None  # while waiting: when the delay ends or the next attempt starts
    # One entry per attempt: {"attempt", "started_at", "completed_at", "error", "retry_in_s"}.
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    error_kind: str | None = None  # timeout | connection_error | 5xx | 429 | ... (what retry `on` matches)
    stopped: bool = False  # the node stopped its path (a filter that did not match): nothing after it runs

    @property
    def key(self) -> str:
        return step_key(self.node_id, self.iteration)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STEP

    def set_status(self, new: StepStatus) -> None:
        if new not in STEP_TRANSITIONS[self.status]:
            raise InvalidTransition(f"step {self.key}: {self.status.value} -> {new.value}")
        self.status = new

    def to_public(self, limit: int | None = None) -> dict[str, Any]:
        """The step as stored (limit None: every byte) or as history shows it (values cut to limit)."""
        def cut(v: Any) -> Any:
            return v if limit is None else history_value(v, limit)

        return {
            "node_id": self.node_id, "type": self.type, "status": self.status.value,
            "input": cut(self.input), "output": cut(self.output), "error": self.error, "attempts": self.attempts,
            "started_at": isoformat(self.started_at), "completed_at": isoformat(self.completed_at),
            "note": self.note, "iteration": self.iteration, "loop": self.loop, "branch": self.branch,
            "resume_at": isoformat(self.resume_at), "attempt_log": self.attempt_log, "error_kind": self.error_kind,
            "stopped": self.stopped,
        }

    @classmethod
    def from_public(cls, d: dict[str, Any], position: int) -> StepState:
        return cls(
            node_id=d["node_id"], type=d["type"], position=position, status=StepStatus(d["status"]),
            input=d.get("input"), output=d.get("output"), error=d.get("error"), attempts=d.get("attempts", 0),
            started_at=parse_iso(d.get("started_at")), completed_at=parse_iso(d.get("completed_at")),
            note=d.get("note"), iteration=d.get("iteration"), loop=d.get("loop"), branch=d.get("branch"),
            resume_at=parse_iso(d.get("resume_at")), attempt_log=d.get("attempt_log") or [],
            error_kind=d.get("error_kind"), stopped=bool(d.get("stopped")),
        )


@dataclass
class RunState:
    id: str
    workflow_id: int
    owner_id: int
    trigger: str
    status: RunStatus = RunStatus.QUEUED
    payload: Any = None
    trigger_data: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    workflow_version: int | None = None
    steps: list[StepState] = field(default_factory=list)
    rev: int = 0
    resume_at: datetime | None = None  # while waiting (or paused out of a wait): when it continues
    replay_of: str | None = None  # the execution this one re-runs (POST /api/v1/logs/{id}/replay)
    control: str | None = None  # a pending "cancel" / "pause" request (read-only here; see control.py)
    definition: dict[str, Any] | None = None  # the definition the run follows (pinned when it starts)
    notify: bool = False  # someone waits for its end (a sync webhook): announced on DONE_CHANNEL

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return int((self.completed_at - self.started_at).total_seconds() * 1000)

    def set_status(self, new: RunStatus) -> None:
        if new not in RUN_TRANSITIONS[self.status]:
            raise InvalidTransition(f"run {self.id}: {self.status.value} -> {new.value}")
        self.status = new

    def meta(self) -> dict[str, Any]:
        meta = {
            "id": self.id, "workflow_id": self.workflow_id, "owner_id": self.owner_id,
            "status": self.status.value, "trigger": self.trigger, "error_message": self.error_message,
            "created_at": isoformat(self.created_at), "started_at": isoformat(self.started_at),
            "completed_at": isoformat(self.completed_at), "workflow_version": self.workflow_version,
            "resume_at": isoformat(self.resume_at), "replay_of": self.replay_of,
        }
        if self.notify:  # only then: every other run's meta stays as it was
            meta["notify"] = True
        return meta

    def step_map(self) -> dict[str, StepState]:
        return {s.key: s for s in self.steps}

    def to_public(self, limit: int | None = None) -> dict[str, Any]:
        """The shape of `GET /api/v1/logs/{id}` (API.md); `limit` cuts big values (history_value)."""
        return {
            "id": self.id, "workflow_id": self.workflow_id, "status": self.status.value,
            "trigger": self.trigger, "payload": self.payload,
            "result": self.result if limit is None else history_value(self.result, limit),
            "error_message": self.error_message, "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at), "completed_at": isoformat(self.completed_at),
            "duration_ms": self.duration_ms, "workflow_version": self.workflow_version,
            "resume_at": isoformat(self.resume_at), "replay_of": self.replay_of, "pending_action": self.control,
            "steps": [s.to_public(limit) for s in sorted(self.steps, key=lambda s: s.position)],
        }


def _decode_hash(raw: Mapping[bytes, bytes]) -> RunState | None:
    if not raw or b"meta" not in raw:
        return None
    meta = loads(raw[b"meta"])
    order: list[str] = loads(raw.get(b"order")) or []
    steps = []
    for pos, key in enumerate(order):
        blob = raw.get(f"step:{key}".encode())
        if blob is not None:
            steps.append(StepState.from_public(loads(blob), pos))
    control = raw.get(b"control")
    return RunState(
        id=meta["id"], workflow_id=meta["workflow_id"], owner_id=meta["owner_id"], trigger=meta["trigger"],
        status=RunStatus(meta["status"]), payload=loads(raw.get(b"payload")),
        trigger_data=loads(raw.get(b"trigger")) or {}, result=loads(raw.get(b"result")),
        error_message=meta.get("error_message"), created_at=parse_iso(meta["created_at"]) or utcnow(),
        started_at=parse_iso(meta.get("started_at")), completed_at=parse_iso(meta.get("completed_at")),
        workflow_version=meta.get("workflow_version"), steps=steps, rev=int(raw.get(b"rev", b"0")),
        resume_at=parse_iso(meta.get("resume_at")), replay_of=meta.get("replay_of"),
        control=control.decode() if control else None, definition=loads(raw.get(b"definition")),
        notify=bool(meta.get("notify")),
    )


class RunStore:
    """Reads and writes run state in Redis. Writes go through a pipeline the caller executes."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(run_id: str) -> str:
        return RUN_KEY.format(run_id)

    def write_new(self, pipe: Pipeline | CommandList, run: RunState) -> None:
        """A new run (queued). Steps it already has (a replay's copied steps) are written too."""
        key = self.key(run.id)
        mapping: dict[str, bytes] = {
            "meta": dumps(run.meta()), "payload": dumps(run.payload), "trigger": dumps(run.trigger_data),
            "result": dumps(None), "order": dumps([s.key for s in sorted(run.steps, key=lambda s: s.position)]),
        }
        for step in run.steps:
            mapping[f"step:{step.key}"] = dumps(step.to_public())
        if run.definition is not None:
            mapping["definition"] = dumps(run.definition)
        pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        pipe.hincrby(key, "rev", 1)
        pipe.xadd(EVENTS_STREAM, {"run": run.id})
        self._announce(pipe, run)

    def write(self, pipe: Pipeline | CommandList, run: RunState, *, steps: list[StepState] | None = None,
              order: bool = False, result: bool = False, definition: bool = False) -> None:
        """Persist the run's meta and, as asked, some steps, the step order, the result, the definition."""
        key = self.key(run.id)
        mapping: dict[str, bytes] = {"meta": dumps(run.meta())}
        if order:
            mapping["order"] = dumps([s.key for s in sorted(run.steps, key=lambda s: s.position)])
        if result:
            mapping["result"] = dumps(run.result)
        if definition:
            mapping["definition"] = dumps(run.definition)
        for step in steps or ():
            mapping[f"step:{step.key}"] = dumps(step.to_public())
        pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        pipe.hincrby(key, "rev", 1)
        pipe.xadd(EVENTS_STREAM, {"run": run.id})
        self._announce(pipe, run)

    @staticmethod
    def _announce(pipe: Pipeline | CommandList, run: RunState) -> None:
        """In the same MULTI as the write: a waited-for run that ended or parked is announced."""
        if run.notify and run.status in ANNOUNCED_RUN:
            pipe.publish(DONE_CHANNEL, run.id)

    def load(self, run_id: str) -> RunState | None:
        return _decode_hash(self.redis.hgetall(self.key(run_id)))  # type: ignore[arg-type]

    @staticmethod
    def decode(raw: Mapping[bytes, bytes]) -> RunState | None:
        """A run from its hash as HGETALL returned it (e.g. from a pipeline)."""
        return _decode_hash(raw)

    def load_many(self, run_ids: list[str]) -> dict[str, RunState]:
        pipe = self.redis.pipeline(transaction=False)
        for rid in run_ids:
            pipe.hgetall(self.key(rid))
        out = {}
        for rid, raw in zip(run_ids, pipe.execute(), strict=True):
            state = _decode_hash(raw)
            if state is not None:
                out[rid] = state
        return out
