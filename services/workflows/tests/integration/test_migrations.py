"""Alembic migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, insert, inspect, table, text
from sqlmodel import Session

from automateos_auth import models as auth_models
from automateos_auth.main import MIGRATIONS as AUTH_MIGRATIONS
from automateos_common.db import alembic_context_options, make_engine, migrate, run_migrations
from automateos_common.runs import RunStatus
from automateos_workflows import crud
from automateos_workflows import models as wf_models
from automateos_workflows.main import MIGRATIONS as WF_MIGRATIONS

pytestmark = pytest.mark.integration


def test_both_services_migrate_one_shared_database_to_exactly_their_models(db_url):
    engine = make_engine(db_url)
    try:
        for _ in range(2):  # a second start finds everything at head and changes nothing
            run_migrations(engine, AUTH_MIGRATIONS, "alembic_version_auth")
            run_migrations(engine, WF_MIGRATIONS, "alembic_version_workflows")
        tables = set(inspect(engine).get_table_names())
        assert tables == {"users", "refresh_tokens", "security_events", "workflows", "executions", "execution_steps",
                          "credentials", "alembic_version_auth", "alembic_version_workflows"}
        for metadata, version_table in ((auth_models.METADATA, "alembic_version_auth"),
                                        (wf_models.METADATA, "alembic_version_workflows")):
            with engine.connect() as conn:
                opts = alembic_context_options(metadata, version_table, conn.dialect.name)
                ctx = MigrationContext.configure(conn, opts={k: v for k, v in opts.items() if k != "target_metadata"})
                assert compare_metadata(ctx, metadata) == []
    finally:
        engine.dispose()


def _migrate(engine, target: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(WF_MIGRATIONS))
    cfg.attributes["version_table"] = "alembic_version_workflows"
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)


def test_0002_keeps_the_runs_and_steps_recorded_under_0001(db_url):
    engine = make_engine(db_url)
    try:
        _migrate(engine, "workflows_0001")
        t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        with engine.begin() as conn:
            conn.execute(insert(table("workflows", column("id"), column("owner_id"), column("name"),
                                      column("is_active"), column("definition", JSON), column("webhook_token"),
                                      column("version"), column("created_at"), column("updated_at"))),
                         [{"id": 1, "owner_id": 7, "name": "w", "is_active": True, "definition": {"nodes": []},
                           "webhook_token": "tok", "version": 1, "created_at": t0, "updated_at": t0}])
            conn.execute(insert(table("executions", column("id"), column("workflow_id"), column("owner_id"),
                                      column("status"), column("trigger"), column("payload", JSON),
                                      column("result", JSON), column("created_at"), column("rev"))),
                         [{"id": "run-1", "workflow_id": 1, "owner_id": 7, "status": "success", "trigger": "webhook",
                           "payload": {"k": "v"}, "result": {"ok": True}, "created_at": t0, "rev": 5}])
            conn.execute(insert(table("execution_steps", column("execution_id"), column("node_id"),
                                      column("position"), column("type"), column("status"),
                                      column("output", JSON), column("attempts"))),
                         [{"execution_id": "run-1", "node_id": "t", "position": 0, "type": "webhook",
                           "status": "success", "output": {"payload": {"k": "v"}}, "attempts": 1},
                          {"execution_id": "run-1", "node_id": "a", "position": 1, "type": "http_request",
                           "status": "success", "output": {"status": 200}, "attempts": 1}])

        run_migrations(engine, WF_MIGRATIONS, "alembic_version_workflows")

        with Session(engine) as session:
            run = crud.get_run(session=session, owner_id=7, run_id="run-1")
            assert run is not None
            assert (run.status, run.payload, run.result, run.rev) == (RunStatus.SUCCESS, {"k": "v"}, {"ok": True}, 5)
            assert (run.resume_at, run.replay_of) == (None, None)
            assert run.trigger_data == {"payload": {"k": "v"}}  # kept before 0002: the payload is all there is
            assert [(s.key, s.node_id, s.position, s.output, s.iteration, s.stopped, s.attempt_log)
                    for s in run.steps] == [("t", "t", 0, {"payload": {"k": "v"}}, None, False, []),
                                            ("a", "a", 1, {"status": 200}, None, False, [])]
        pk = inspect(engine).get_pk_constraint("execution_steps")
        assert pk["constrained_columns"] == ["execution_id", "key"]
        fks = inspect(engine).get_foreign_keys("execution_steps")
        assert [(fk["constrained_columns"], fk["referred_table"], fk["options"].get("ondelete")) for fk in fks] == \
            [(["execution_id"], "executions", "CASCADE")]
        # A loop iteration is a row of its own now: same node, another key.
        with engine.begin() as conn:
            conn.execute(insert(table("execution_steps", column("execution_id"), column("key"), column("node_id"),
                                      column("position"), column("type"), column("status"), column("attempts"),
                                      column("iteration"), column("loop"))),
                         [{"execution_id": "run-1", "key": "a[0]", "node_id": "a", "position": 2,
                           "type": "http_request", "status": "success", "attempts": 1, "iteration": 0,
                           "loop": "l"}])

        # And back: the iteration has no place in 0001's shape; everything else is kept.
        _migrate(engine, "workflows_0001", down=True)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT node_id, position FROM execution_steps ORDER BY position")).all()
            assert [tuple(r) for r in rows] == [("t", 0), ("a", 1)]
            assert conn.execute(text("SELECT status FROM executions")).scalar_one() == "success"
        assert inspect(engine).get_pk_constraint("execution_steps")["constrained_columns"] == ["execution_id",
                                                                                                "node_id"]
        run_migrations(engine, WF_MIGRATIONS, "alembic_version_workflows")
        with Session(engine) as session:
            run = crud.get_run(session=session, owner_id=7, run_id="run-1")
            assert [s.key for s in run.steps] == ["t", "a"]
    finally:
        engine.dispose()


def test_services_migrate_in_a_child_process_and_stay_free_of_alembic(db_url, tmp_path):
    import os
    import subprocess
    import sys

    for _ in range(2):  # the second start finds the tables at head
        migrate(db_url, AUTH_MIGRATIONS, "alembic_version_auth")
        migrate(db_url, WF_MIGRATIONS, "alembic_version_workflows")
    engine = make_engine(db_url)
    try:
        assert {"users", "workflows", "executions", "alembic_version_auth"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # A service started this way (auth: its lifespan migrates) never imports Alembic itself.
    probe = ("import sys, asyncio\n"
             "from automateos_auth.main import create_app\n"
             "app = create_app()\n"
             "async def start():\n"
             "    async with app.router.lifespan_context(app):\n"
             "        print('alembic' in sys.modules)\n"
             "asyncio.run(start())\n")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'auth.db'}", "AUTOMATEOS_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
                         env=env)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
    assert "users" in inspect(make_engine(f"sqlite:///{tmp_path / 'auth.db'}")).get_table_names()


def test_a_failed_migration_says_why_and_not_the_password():
    url = "postgresql+psycopg2://someone:hunter2-secret@127.0.0.1:9/nowhere"  # nothing listens on port 9
    with pytest.raises(RuntimeError, match=r"alembic_version_auth.*failed") as caught:
        migrate(url, AUTH_MIGRATIONS, "alembic_version_auth", timeout_s=60)
    assert "127.0.0.1" in str(caught.value) and "hunter2-secret" not in str(caught.value)
