"""Database plumbing: engines, sessions and Alembic migrations that run on start.

Each service owns its tables and its own Alembic history (its own version table), so two
services can share one PostgreSQL database in compose, and each gets a SQLite file in dev.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session
from starlette.requests import Request  # at run time: FastAPI reads get_session's annotation to inject it

from .jsonutil import dumps_str, loads

log = logging.getLogger(__name__)

# How `migrate` hands the database URL to its child: the environment, never the command line.
MIGRATE_URL_ENV = "AUTOMATEOS_MIGRATE_DATABASE_URL"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    # JSON columns through orjson, as everywhere else (the standard library's json is several times slower:
    # the run recorder writes every run's payload, result and steps).
    codec: dict[str, Any] = {"json_serializer": dumps_str, "json_deserializer": loads}
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **codec)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the API read while the run recorder writes; FKs are off by default in SQLite.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, **codec)


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a session on the engine the app's lifespan opened (`app.state.engine`)."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def run_migrations(engine: Engine, script_location: Path, version_table: str) -> None:
    """Upgrade to head. On PostgreSQL an advisory lock serialises replicas starting together."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = version_table
    with engine.begin() as conn:
        is_pg = conn.dialect.name == "postgresql"
        lock_id = zlib.crc32(version_table.encode())
        if is_pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.info("migrations at head (%s)", version_table)


def migrate(url: str, script_location: Path, version_table: str, *, timeout_s: float = 600.0) -> None:
    """`run_migrations` in a process of its own (`python -m automateos_common.migrate`), so that the
    service never imports Alembic and Mako: about 10 MB resident for the life of each service that
    owns tables, for a second more at start. An in-memory SQLite database (tests) can only be
    migrated in this process, so it is."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        engine = make_engine(url)
        try:
            run_migrations(engine, script_location, version_table)
        finally:
            engine.dispose()
        return
    proc = subprocess.run([sys.executable, "-m", "automateos_common.migrate", str(script_location), version_table],
                          env={**os.environ, MIGRATE_URL_ENV: url}, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(f"database migrations ({version_table}) failed with exit status {proc.returncode}:\n{tail}")
    log.info("migrations at head (%s)", version_table)


def service_metadata(*tables: Table) -> MetaData:
    """A MetaData with only these tables: services share one database but not their schemas."""
    md = MetaData()
    for table in tables:
        table.to_metadata(md)
    return md


def alembic_context_options(target_metadata: MetaData, version_table: str, dialect: str) -> dict[str, Any]:
    own = set(target_metadata.tables)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:  # noqa: ARG001
        # Tables of other services (and their version tables) in a shared database are not ours.
        table = obj if type_ == "table" else getattr(obj, "table", None)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return table_name in own

    return {"target_metadata": target_metadata, "version_table": version_table, "include_object": include_object,
            "render_as_batch": dialect == "sqlite", "compare_type": True}


def run_alembic_env(target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode with a connection handed in)."""
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        **alembic_context_options(target_metadata, context.config.attributes["version_table"],
                                  connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()
