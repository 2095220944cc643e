"""The run history recorder: Redis run state -> database, in batches.

It reads run ids from the stream `aos:events` as the consumer group `recorder` (several
replicas share the work), loads each run's current state from Redis once per batch however
many events it had, and upserts runs and steps; an older `rev` never overwrites a newer one.
Entries are acknowledged only after the database commit, so a crash re-delivers them. Once a
finished run is in the database its Redis copy expires after `finished_run_ttl_s`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import Engine, Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from automateos_common.jsonutil import dumps_str
from automateos_common.runs import EVENTS_STREAM, RunState, RunStore, history_value
from automateos_common.settings import CommonSettings

from .models import Execution, ExecutionStep, Workflow

log = logging.getLogger(__name__)
GROUP = "recorder"
CLAIM_IDLE_MS = 60_000
DEFAULT_VALUE_LIMIT: int = CommonSettings.model_fields["step_output_max_bytes"].default


def _run_row(run: RunState, limit: int) -> dict[str, Any]:
    return {
        "id": run.id, "workflow_id": run.workflow_id, "owner_id": run.owner_id, "status": run.status.value,
        "trigger": run.trigger, "payload": run.payload, "result": history_value(run.result, limit),
        "error_message": run.error_message, "workflow_version": run.workflow_version, "created_at": run.created_at,
        "started_at": run.started_at, "completed_at": run.completed_at, "duration_ms": run.duration_ms,
        "rev": run.rev, "resume_at": run.resume_at, "replay_of": run.replay_of,
        "trigger_data": run.trigger_data,  # whole, not cut: a replay starts from it
    }


def _step_rows(run: RunState, limit: int) -> list[dict[str, Any]]:
    return [{
        "execution_id": run.id, "key": s.key, "node_id": s.node_id, "position": s.position, "type": s.type,
        "status": s.status.value, "input": history_value(s.input, limit), "output": history_value(s.output, limit),
        "error": s.error, "note": s.note, "attempts": s.attempts, "started_at": s.started_at,
        "completed_at": s.completed_at, "iteration": s.iteration, "loop": s.loop, "branch": s.branch,
        "resume_at": s.resume_at, "attempt_log": s.attempt_log or None, "error_kind": s.error_kind,
        "stopped": s.stopped,
    } for s in run.steps]


# What a run is created with never changes (a replay is a run of its own): an update leaves it alone,
# so the database does not parse and rewrite the trigger's JSON again with every state the run passes.
_IMMUTABLE = ("id", "workflow_id", "owner_id", "created_at", "trigger", "payload", "trigger_data", "replay_of")
_UPSERTS: dict[tuple[str, str], tuple[Any, Any]] = {}


def _upsert_statements(engine: Engine) -> tuple[Any, Any]:
    """INSERT ... ON CONFLICT DO UPDATE for runs (newer rev only, RETURNING id) and steps, built once per
    engine.

    PostgreSQL: each statement takes the whole batch as one JSON array parameter and expands it with
    `jsonb_populate_recordset` (the table's own row type does the conversions). psycopg2 quotes every
    parameter in Python-facing C code, a few µs each, and a batch of runs has ~80 a run: one parameter
    instead took the recorder from ~0.8 to ~0.4 ms of CPU a run (bench/NOTES.md).
    SQLite: the rows as a list (SQLAlchemy caches the compiled form and sends multi-row VALUES)."""
    cache_key = (engine.dialect.name, str(engine.url))
    if cache_key in _UPSERTS:
        return _UPSERTS[cache_key]
    ex_table: Table = Execution.__table__  # type: ignore[attr-defined]
    st_table: Table = ExecutionStep.__table__  # type: ignore[attr-defined]
    updatable = [c.name for c in ex_table.columns if c.name not in _IMMUTABLE]
    scols = [c.name for c in st_table.columns if c.name not in ("execution_id", "key")]
    if engine.dialect.name == "postgresql":
        q = engine.dialect.identifier_preparer.quote
        def from_json(table: Table, conflict: str, update: list[str], where: str, returning: str) -> Any:
            cols = ", ".join(q(c.name) for c in table.columns)
            sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update)
            return text(f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM "
                        f"jsonb_populate_recordset(NULL::{q(table.name)}, CAST(:rows AS jsonb)) "
                        f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}{where} RETURNING {returning}")
        stmts = (from_json(ex_table, "id", updatable, f" WHERE {q(ex_table.name)}.rev < EXCLUDED.rev", "id"),
                 from_json(st_table, f"execution_id, {q('key')}", scols, "", q("key")))
        _UPSERTS[cache_key] = stmts
        return stmts
    stmt = sqlite.insert(ex_table)
    runs = stmt.on_conflict_do_update(
        index_elements=["id"], set_={c: stmt.excluded[c] for c in updatable},
        where=ex_table.c.rev < stmt.excluded.rev,
    ).returning(ex_table.c.id)
    sstmt = sqlite.insert(st_table)
    # RETURNING (unread) makes SQLAlchemy send the rows as multi-row VALUES batches ("insertmanyvalues").
    steps = sstmt.on_conflict_do_update(index_elements=["execution_id", "key"],
                                        set_={c: sstmt.excluded[c] for c in scols}).returning(st_table.c.key)
    _UPSERTS[cache_key] = (runs, steps)
    return runs, steps


def _execute(session: Session, engine: Engine, stmt: Any, rows: list[dict[str, Any]]) -> Any:
    if engine.dialect.name == "postgresql":
        return session.execute(stmt, {"rows": dumps_str(rows)})
    return session.execute(stmt, rows)


def upsert_runs(session: Session, engine: Engine, runs: list[RunState], *,
                limit: int = DEFAULT_VALUE_LIMIT) -> list[str]:
    """Write runs and their steps; returns the ids whose row was written (newer rev).

    Step input/output and the run's result are stored as history shows them: cut to a marker
    above `limit` bytes (Redis keeps every byte while the run lives).
    """
    if not runs:
        return []
    run_stmt, step_stmt = _upsert_statements(engine)
    written = set(_execute(session, engine, run_stmt, [_run_row(r, limit) for r in runs]).scalars().all())
    step_rows = [row for r in runs if r.id in written for row in _step_rows(r, limit)]
    if step_rows:
        _execute(session, engine, step_stmt, step_rows).close()
    return [r.id for r in runs if r.id in written]


class Recorder:
    def __init__(self, engine: Engine, redis: Redis, *, batch: int = 500, finished_ttl_s: int = 300,
                 consumer: str | None = None, claim_idle_ms: int = CLAIM_IDLE_MS,
                 value_limit: int = DEFAULT_VALUE_LIMIT, linger_ms: int = 0, nice: int = 0) -> None:
        self.engine = engine
        self.value_limit = value_limit  # AUTOMATEOS_STEP_OUTPUT_MAX_BYTES
        self.redis = redis
        self.store = RunStore(redis)
        self.batch = batch
        self.finished_ttl_s = finished_ttl_s
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.linger_s = linger_ms / 1000  # after a short batch, let events gather before reading again
        self.last_entries = 0  # stream entries the last step() read
        self.nice = nice  # the recorder thread's niceness (see lower_priority)

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(EVENTS_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _record(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        if not entries:
            return 0
        ids = list(dict.fromkeys(fields[b"run"].decode() for _, fields in entries if b"run" in fields))
        states = self.store.load_many(ids)
        runs = list(states.values())
        with Session(self.engine) as session:
            known = set(session.exec(select(Workflow.id).where(
                col(Workflow.id).in_({r.workflow_id for r in runs}))).all()) if runs else set()
            runs = [r for r in runs if r.workflow_id in known]  # the workflow was deleted: nothing to keep
            try:
                upsert_runs(session, self.engine, runs, limit=self.value_limit)
                session.commit()
            except IntegrityError:
                session.rollback()
                self._record_one_by_one(runs)
        finished = [r for r in states.values() if r.is_terminal]
        entry_ids = [eid for eid, _ in entries]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(EVENTS_STREAM, GROUP, *entry_ids)
            pipe.xdel(EVENTS_STREAM, *entry_ids)
            for r in finished:
                pipe.expire(self.store.key(r.id), self.finished_ttl_s)
            pipe.execute()
        return len(ids)

    def _record_one_by_one(self, runs: list[RunState]) -> None:
        # A workflow deleted between our check and the insert: keep every other run of the batch.
        for run in runs:
            with Session(self.engine) as session:
                try:
                    upsert_runs(session, self.engine, [run], limit=self.value_limit)
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    log.info("run %s dropped: its workflow was deleted", run.id)

    def step(self, block_ms: int = 1000) -> int:
        """Process one batch; returns the number of runs recorded."""
        resp: Any = self.redis.xreadgroup(GROUP, self.consumer, {EVENTS_STREAM: ">"}, count=self.batch,
                                          block=block_ms)
        entries = resp[0][1] if resp else []
        self.last_entries = len(entries)
        return self._record(entries)

    def recover(self) -> int:
        """Take over entries another (dead) consumer read but never acknowledged, and our own."""
        n = 0
        own: Any = self.redis.xreadgroup(GROUP, self.consumer, {EVENTS_STREAM: "0"}, count=self.batch)
        if own and own[0][1]:
            n += self._record(own[0][1])
        start = "0-0"
        while True:
            claim: Any = self.redis.xautoclaim(EVENTS_STREAM, GROUP, self.consumer, self.claim_idle_ms,
                                               start_id=start, count=self.batch)
            start, claimed = claim[0], claim[1]
            n += self._record([e for e in claimed if e[1]])
            if start in (b"0-0", "0-0"):
                return n

    def lower_priority(self) -> None:
        """Make the calling thread (Linux: a thread has a niceness of its own) yield the CPU to the rest."""
        if self.nice <= 0 or not sys.platform.startswith("linux"):
            return
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(self.nice, os.getpriority(os.PRIO_PROCESS, tid)))
        except OSError as exc:
            log.info("recorder: could not lower its priority (%s)", exc)

    def run_forever(self, stop: threading.Event) -> None:
        self.lower_priority()
        ready = False
        next_recover = 0.0
        while not stop.is_set():
            try:
                if not ready:
                    self.ensure_group()
                    ready = True
                if time.monotonic() >= next_recover:
                    self.recover()  # entries a dead replica read but never recorded
                    next_recover = time.monotonic() + self.claim_idle_ms / 1000
                self.step()
                if 0 < self.last_entries < self.batch and self.linger_s:
                    stop.wait(self.linger_s)
            except (RedisError, OSError) as exc:
                log.warning("recorder: Redis unavailable (%s); retrying", exc)
                ready = False
                stop.wait(1.0)
            except Exception:
                log.exception("recorder batch failed; retrying")
                stop.wait(1.0)
