from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from automateos_common.db import make_engine, run_migrations
from automateos_workflows.main import MIGRATIONS


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workflows.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    run_migrations(engine, MIGRATIONS, "alembic_version_workflows")
    yield engine
    engine.dispose()
