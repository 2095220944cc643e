"""Credentials for the step that runs now: fetched sealed from the workflows service, opened here.

The workflows service seals values and never opens them; this process holds the master keys
(AUTOMATEOS_MASTER_KEY...) and opens a value only while the step that needs it runs. Nothing is
cached: every step reads the credential's current value, so a new value (rotation) applies to
the next step that runs, with no change to the workflow.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from automateos_common import audit
from automateos_common.credentials import OpenedCredential
from automateos_common.errors import NodeExecutionError
from automateos_common.secretstore import SecretRef, SecretStore, SecretStoreError

from .internal import internal_get


class CredentialSource:
    def __init__(self, workflows_url: str, internal_secret: str, store: SecretStore,
                 client: httpx.Client | None = None) -> None:
        self.workflows_url = workflows_url.rstrip("/")
        self._secret = internal_secret
        self.store = store
        self._client = client

    def _fetch(self, owner_id: int, ref: int | str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = internal_get(
            f"{self.workflows_url}/internal/v1/credentials/{owner_id}/{quote(str(ref), safe='')}", self._secret,
            client=self._client,
            failed=lambda why, kind: NodeExecutionError(f"credential '{ref}': the workflows service {why}", kind=kind))
        return record

    def open(self, owner_id: int, ref: int | str) -> OpenedCredential:
        record = self._fetch(owner_id, ref)
        if record is None or record.get("owner_id") != owner_id:
            raise NodeExecutionError(f"credential '{ref}' does not exist (deleted since the workflow was saved?)")
        try:
            secret = orjson.loads(self.store.get(SecretRef(owner_id, int(record["id"]), str(record["secret_ref"]))))
        except SecretStoreError as exc:
            # Names the key id at most; never any part of the value.
            raise NodeExecutionError(f"credential '{record['name']}' cannot be opened: {exc}") from None
        audit.emit(audit.CREDENTIAL_READ, user_id=owner_id, credential_id=int(record["id"]), name=str(record["name"]))
        return OpenedCredential(id=int(record["id"]), name=str(record["name"]), type=str(record["type"]),
                                fields={**record["public"], **secret}, version=int(record.get("version", 1)))
