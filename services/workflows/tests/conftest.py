from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services.workflows.tests.factories import ServiceClient, ThreadedServer, token_verifier
from sqlalchemy import Engine

from automateos_common.db import make_engine, run_migrations
from automateos_workflows.main import MIGRATIONS, create_app
from automateos_workflows.settings import WorkflowsSettings, get_settings


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    run_migrations(engine, MIGRATIONS, "alembic_version_workflows")
    yield engine
    engine.dispose()


def service_settings(tmp_path: Path, db_url: str, redis_url: str, **overrides: object) -> WorkflowsSettings:
    """The workflows service alone: no recorder thread (tests record explicitly), no auth service
    (tokens are checked against a key the test holds), its own queue (no worker drains it)."""
    fields: dict[str, object] = {
        "database_url": db_url, "redis_url": redis_url, "data_dir": tmp_path / "data", "recorder_enabled": False,
        "auth_url": "http://127.0.0.1:9", "queue_name": "workflows-test", "internal_token": "internal-test",
        **overrides,
    }
    return WorkflowsSettings.model_validate(fields)


@pytest.fixture
def service(tmp_path, db_url, redis_client) -> Iterator[ServiceClient]:
    """The workflows app in this process on real Redis (the test's own database) and SQLite/PostgreSQL."""
    kwargs = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    settings = service_settings(tmp_path, db_url, redis_url, step_output_max_bytes=1024)
    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: settings
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, trust_env=False) as client:
        app.state.token_verifier = token_verifier(settings)  # after start-up, which sets the real one
        yield ServiceClient(client=client, app=app, settings=settings, redis=redis_client)
