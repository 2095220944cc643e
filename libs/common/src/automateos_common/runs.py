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
      order     JSON: node ids in execution order
      step:<id> JSON: one step
      rev       integer, bumped on every write
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from .jsonutil import dumps, isoformat, loads, parse_iso, utcnow

RUN_KEY = "aos:run:{}"
EVENTS_STREAM = "aos:events"


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL_RUN = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})

# Allowed transitions, checked in one place (`RunState.set_status`, `StepState.set_status`).
# running -> running is a resume after a worker died mid-run.
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED}),
    StepStatus.RUNNING: frozenset({StepStatus.RUNNING, StepStatus.SUCCESS, StepStatus.FAILED, StepStatus.SKIPPED}),
    StepStatus.SUCCESS: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


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

    def set_status(self, new: StepStatus) -> None:
        if new not in STEP_TRANSITIONS[self.status]:
            raise InvalidTransition(f"step {self.node_id}: {self.status.value} -> {new.value}")
        self.status = new

    def to_public(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id, "type": self.type, "status": self.status.value,
            "input": self.input, "output": self.output, "error": self.error, "attempts": self.attempts,
            "started_at": isoformat(self.started_at), "completed_at": isoformat(self.completed_at),
            "note": self.note,
        }

    @classmethod
    def from_public(cls, d: dict[str, Any], position: int) -> StepState:
        return cls(
            node_id=d["node_id"], type=d["type"], position=position, status=StepStatus(d["status"]),
            input=d.get("input"), output=d.get("output"), error=d.get("error"), attempts=d.get("attempts", 0),
            started_at=parse_iso(d.get("started_at")), completed_at=parse_iso(d.get("completed_at")),
            note=d.get("note"),
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
        return {
            "id": self.id, "workflow_id": self.workflow_id, "owner_id": self.owner_id,
            "status": self.status.value, "trigger": self.trigger, "error_message": self.error_message,
            "created_at": isoformat(self.created_at), "started_at": isoformat(self.started_at),
            "completed_at": isoformat(self.completed_at), "workflow_version": self.workflow_version,
        }

    def to_public(self) -> dict[str, Any]:
        """The shape of `GET /api/v1/logs/{id}` (API.md)."""
        return {
            "id": self.id, "workflow_id": self.workflow_id, "status": self.status.value,
            "trigger": self.trigger, "payload": self.payload, "result": self.result,
            "error_message": self.error_message, "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at), "completed_at": isoformat(self.completed_at),
            "duration_ms": self.duration_ms, "workflow_version": self.workflow_version,
            "steps": [s.to_public() for s in sorted(self.steps, key=lambda s: s.position)],
        }


def _decode_hash(raw: Mapping[bytes, bytes]) -> RunState | None:
    if not raw or b"meta" not in raw:
        return None
    meta = loads(raw[b"meta"])
    order: list[str] = loads(raw.get(b"order")) or []
    steps = []
    for pos, node_id in enumerate(order):
        blob = raw.get(f"step:{node_id}".encode())
        if blob is not None:
            steps.append(StepState.from_public(loads(blob), pos))
    return RunState(
        id=meta["id"], workflow_id=meta["workflow_id"], owner_id=meta["owner_id"], trigger=meta["trigger"],
        status=RunStatus(meta["status"]), payload=loads(raw.get(b"payload")),
        trigger_data=loads(raw.get(b"trigger")) or {}, result=loads(raw.get(b"result")),
        error_message=meta.get("error_message"), created_at=parse_iso(meta["created_at"]) or utcnow(),
        started_at=parse_iso(meta.get("started_at")), completed_at=parse_iso(meta.get("completed_at")),
        workflow_version=meta.get("workflow_version"), steps=steps, rev=int(raw.get(b"rev", b"0")),
    )


class RunStore:
    """Reads and writes run state in Redis. Writes go through a pipeline the caller executes."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(run_id: str) -> str:
        return RUN_KEY.format(run_id)

    def write_new(self, pipe: Pipeline, run: RunState) -> None:
        key = self.key(run.id)
        pipe.hset(key, mapping={
            "meta": dumps(run.meta()), "payload": dumps(run.payload), "trigger": dumps(run.trigger_data),
            "result": dumps(None), "order": dumps([]),
        })
        pipe.hincrby(key, "rev", 1)
        pipe.xadd(EVENTS_STREAM, {"run": run.id})

    def write(self, pipe: Pipeline, run: RunState, *, steps: list[StepState] | None = None,
              order: bool = False, result: bool = False) -> None:
        """Persist the run's meta and, as asked, some steps, the step order and the result."""
        key = self.key(run.id)
        mapping: dict[str, bytes] = {"meta": dumps(run.meta())}
        if order:
            mapping["order"] = dumps([s.node_id for s in sorted(run.steps, key=lambda s: s.position)])
        if result:
            mapping["result"] = dumps(run.result)
        for step in steps or ():
            mapping[f"step:{step.node_id}"] = dumps(step.to_public())
        pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        pipe.hincrby(key, "rev", 1)
        pipe.xadd(EVENTS_STREAM, {"run": run.id})

    def load(self, run_id: str) -> RunState | None:
        return _decode_hash(self.redis.hgetall(self.key(run_id)))  # type: ignore[arg-type]

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
