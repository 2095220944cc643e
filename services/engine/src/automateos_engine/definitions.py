"""Where the engine gets a workflow's definition: the Redis catalog, else the workflows service."""

from __future__ import annotations

import httpx
from redis import Redis

from automateos_common import catalog
from automateos_common.catalog import CatalogEntry

from .internal import internal_get


class DefinitionUnavailable(RuntimeError):
    """Neither the catalog nor the workflows service could answer (retry later)."""


class DefinitionSource:
    def __init__(self, redis: Redis, workflows_url: str, internal_secret: str,
                 client: httpx.Client | None = None) -> None:
        self.redis = redis
        self.workflows_url = workflows_url.rstrip("/")
        self._secret = internal_secret
        self._client = client

    def get(self, workflow_id: int, *, read: tuple[CatalogEntry | None, bool] | None = None) -> CatalogEntry | None:
        """The workflow's entry; `read` is (entry, catalog ready) as the caller already read them from
        Redis (the pick-up script), else they are read now. A miss in a catalog that is not ready asks
        the workflows service."""
        entry, authoritative = read if read is not None else catalog.lookup_workflow(self.redis, workflow_id)
        if entry is not None or authoritative:
            return entry
        return self._fetch(workflow_id)

    def _fetch(self, workflow_id: int) -> CatalogEntry | None:
        data = internal_get(f"{self.workflows_url}/internal/v1/workflows/{workflow_id}", self._secret,
                            client=self._client,
                            failed=lambda why, _kind: DefinitionUnavailable(f"workflows service {why}"))
        if data is None:
            return None
        return CatalogEntry(workflow_id=data["id"], owner_id=data["owner_id"], is_active=data["is_active"],
                            version=data["version"], definition=data["definition"],
                            webhook_token=data["webhook_token"])
