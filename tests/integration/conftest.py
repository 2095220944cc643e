from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.helpers import Api


@pytest.fixture(scope="session")
def api(pg_stack) -> Iterator[Api]:
    client = Api(pg_stack.gateway_url)
    yield client
    client.http.close()
