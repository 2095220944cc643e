from __future__ import annotations

from collections.abc import Iterator

import pytest
from services.auth.tests.factories import AuthClient, auth_settings, running


@pytest.fixture
def make_auth(tmp_path, db_url, redis_client):
    """make_auth(**settings) -> a running AuthClient on SQLite/PostgreSQL and the test's Redis database."""
    stack: list[Iterator[AuthClient]] = []

    def make(**overrides: object) -> AuthClient:
        gen = running(auth_settings(tmp_path, db_url, redis_client, **overrides))
        stack.append(gen)
        return next(gen)

    yield make
    for gen in reversed(stack):
        next(gen, None)


@pytest.fixture
def auth(make_auth) -> AuthClient:
    return make_auth()
