"""Security events: the stream `aos:audit` -> the `security_events` table, and the owner's list.

Mirrors the workflows service's run recorder: the consumer group `audit` (every auth replica shares
the work) reads entries, inserts them in one transaction, and acknowledges (and deletes) them only
after the commit, so a crash re-delivers them. Inserts are idempotent on the event's own id, so a
re-delivered entry (or an event XADDed twice by a retrying sender) is one row. Entries that cannot
be recorded (no such user: a token of a deleted user; an unparsable entry) are acknowledged and
dropped; their log line is the record.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from redis import Redis
from sqlalchemy import Engine, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from automateos_common.audit import STREAM
from automateos_common.jsonutil import loads, parse_iso
from automateos_common.streams import CLAIM_IDLE_MS, Entry, StreamRecorder

from .models import SecurityEvent, User

log = logging.getLogger(__name__)
GROUP = "audit"


def _row(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    try:
        e = loads(fields[b"e"])
        at = parse_iso(e["at"])
        if not isinstance(e["user_id"], int) or not isinstance(at, datetime):
            return None
        return {"id": str(e["id"])[:32], "user_id": e["user_id"], "event": str(e["event"])[:64], "at": at,
                "ip": e.get("ip"), "request_id": e.get("request_id"), "service": str(e.get("service"))[:32],
                "details": e.get("details") if isinstance(e.get("details"), dict) else {}}
    except (KeyError, TypeError, ValueError):
        return None


def insert_events(session: Session, rows: list[dict[str, Any]]) -> int:
    """INSERT ... ON CONFLICT (id) DO NOTHING: recording an event again changes nothing. Returns the rows
    written."""
    rows = list({r["id"]: r for r in rows}.values())  # one statement must not hold one id twice
    if not rows:
        return 0
    table: Table = SecurityEvent.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = session.execute(insert(table).values(rows).on_conflict_do_nothing(index_elements=["id"]))
    return int(getattr(result, "rowcount", 0) or 0)


def list_events(*, session: Session, user_id: int, limit: int, offset: int) -> tuple[list[SecurityEvent], int]:
    where = SecurityEvent.user_id == user_id
    total = session.exec(select(func.count()).select_from(SecurityEvent).where(where)).one()
    items = session.exec(select(SecurityEvent).where(where)
                         .order_by(col(SecurityEvent.at).desc(), col(SecurityEvent.id).desc())
                         .offset(offset).limit(limit)).all()
    return list(items), int(total)


class EventRecorder(StreamRecorder):
    label = "security events"

    def __init__(self, engine: Engine, redis: Redis, *, batch: int = 500, consumer: str | None = None,
                 claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        super().__init__(redis, stream=STREAM, group=GROUP, batch=batch, consumer=consumer,
                         claim_idle_ms=claim_idle_ms)
        self.engine = engine

    def record(self, entries: list[Entry]) -> int:
        if not entries:
            return 0
        rows = [r for r in (_row(fields) for _, fields in entries) if r is not None]
        written = 0
        with Session(self.engine) as session:
            users = {r["user_id"] for r in rows}
            known = set(session.exec(select(User.id).where(col(User.id).in_(users))).all()) if users else set()
            rows = [r for r in rows if r["user_id"] in known]  # a deleted user's events: nobody can list them
            try:
                written = insert_events(session, rows)
                session.commit()
            except IntegrityError:  # a user deleted between the check and the insert: keep the others
                session.rollback()
                written = self._record_one_by_one(rows)
        ids = [eid for eid, _ in entries]
        with self.redis.pipeline(transaction=False) as pipe:
            self.acknowledge(pipe, ids)
            pipe.execute()
        return written

    def _record_one_by_one(self, rows: list[dict[str, Any]]) -> int:
        written = 0
        for row in rows:
            with Session(self.engine) as session:
                try:
                    written += insert_events(session, [row])
                    session.commit()
                except IntegrityError:
                    session.rollback()
        return written
