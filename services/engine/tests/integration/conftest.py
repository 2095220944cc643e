"""Fixtures for the engine's integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from automateos_engine import settings as engine_settings


@pytest.fixture
def engine_env(monkeypatch: pytest.MonkeyPatch, redis_client) -> Iterator[None]:
    """The engine's settings pointed at the test's Redis (database 15), egress to loopback allowed."""
    kw = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv("REDIS_URL", f"redis://{kw['host']}:{kw['port']}/{kw['db']}")
    monkeypatch.setenv("AUTOMATEOS_EGRESS_ALLOW", "127.0.0.1")
    monkeypatch.setenv("AUTOMATEOS_INTERNAL_TOKEN", "test-secret")
    engine_settings.get_settings.cache_clear()
    yield
    engine_settings.get_settings.cache_clear()
