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
import sys
import threading
from typing import Any

from redis import Redis
from sqlalchemy import Engine, Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from automateos_common.jsonutil import dumps_str
from automateos_common.runs import EVENTS_STREAM, RunState, RunStore, history_value
from automateos_common.settings import CommonSettings
from automateos_common.streams import CLAIM_IDLE_MS, Entry, StreamRecorder

from .models import Execution, ExecutionStep, Workflow

log = logging.getLogger(__name__)
GROUP = "recorder"
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


class Recorder(StreamRecorder):
    label = "recorder"

    def __init__(self, engine: Engine, redis: Redis, *, batch: int = 500, finished_ttl_s: int = 300,
                 consumer: str | None = None, claim_idle_ms: int = CLAIM_IDLE_MS,
                 value_limit: int = DEFAULT_VALUE_LIMIT, linger_ms: int = 0, nice: int = 0) -> None:
        super().__init__(redis, stream=EVENTS_STREAM, group=GROUP, batch=batch, consumer=consumer,
                         claim_idle_ms=claim_idle_ms, linger_ms=linger_ms)
        self.engine = engine
        self.value_limit = value_limit  # AUTOMATEOS_STEP_OUTPUT_MAX_BYTES
        self.store = RunStore(redis)
        self.finished_ttl_s = finished_ttl_s
        self.nice = nice  # the recorder thread's niceness (see lower_priority)

    def record(self, entries: list[Entry]) -> int:
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
            self.acknowledge(pipe, entry_ids)
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

    def lower_priority(self) -> None:
        """Make the calling thread (Linux: a thread has a niceness of its own) yield the CPU to the rest."""
        if self.nice <= 0 or not sys.platform.startswith("linux"):
            return
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(self.nice, os.getpriority(os.PRIO_PROCESS, tid)))
        except OSError as exc:
            log.info("recorder: could not lower its priority (%s)", exc)

    def on_start(self) -> None:
        self.lower_priority()
