"""Alembic migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from automateos_auth import models as auth_models
from automateos_auth.main import MIGRATIONS as AUTH_MIGRATIONS
from automateos_common.db import alembic_context_options, make_engine, run_migrations
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
        assert tables == {"users", "workflows", "executions", "execution_steps",
                          "alembic_version_auth", "alembic_version_workflows"}
        for metadata, version_table in ((auth_models.METADATA, "alembic_version_auth"),
                                        (wf_models.METADATA, "alembic_version_workflows")):
            with engine.connect() as conn:
                opts = alembic_context_options(metadata, version_table, conn.dialect.name)
                ctx = MigrationContext.configure(conn, opts={k: v for k, v in opts.items() if k != "target_metadata"})
                assert compare_metadata(ctx, metadata) == []
    finally:
        engine.dispose()
