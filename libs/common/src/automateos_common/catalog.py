"""The workflow catalog in Redis: what the ingress and the engine need, without a database trip.

Kept by the workflows service (the owner of the `workflows` table) on every change, and
rebuilt in full when it starts and periodically:

    aos:hook:{token}   "{workflow_id}:{owner_id}:{method}", then ":{options as JSON}" when the trigger
                       has options (Node.webhook_options); only while the workflow is active and its
                       trigger answers on a webhook URL
    aos:wf:{id}        hash: owner, active, version, definition (JSON)
    aos:catalog:ready  set after a full rebuild; when absent (Redis lost its data) a catalog
                       miss is not an answer, and readers fall back to the workflows service.

Every change of a hook entry is announced on the channel `aos:catalog:changes` (the token, or
`*` for "forget everything"), in the same MULTI as the change: the ingress keeps the hooks it
has looked up in memory and forgets one as soon as its entry changes (automateos_ingress.hookcache).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline

from .jsonutil import dumps, dumps_str, loads

HOOK_KEY = "aos:hook:{}"
WF_KEY = "aos:wf:{}"
READY_KEY = "aos:catalog:ready"
CHANGES_CHANNEL = "aos:catalog:changes"
FORGET_ALL = "*"


@dataclass(frozen=True)
class HookTarget:
    workflow_id: int
    owner_id: int
    method: str = "POST"  # the HTTP method the webhook URL answers to
    # The trigger's webhook options (Node.webhook_options): authentication, deduplication, response mode...
    options: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CatalogEntry:
    workflow_id: int
    owner_id: int
    is_active: bool
    version: int
    definition: dict[str, Any]
    webhook_token: str
    webhook_method: str | None = None  # None: the trigger does not listen on a webhook URL
    webhook_options: dict[str, Any] = field(default_factory=dict)


def publish(pipe: Pipeline, entry: CatalogEntry, *, old_token: str | None = None) -> None:
    if old_token and old_token != entry.webhook_token:
        pipe.delete(HOOK_KEY.format(old_token))
    pipe.hset(WF_KEY.format(entry.workflow_id), mapping={
        "owner": entry.owner_id, "active": int(entry.is_active), "version": entry.version,
        "definition": dumps(entry.definition),
    })
    hook_key = HOOK_KEY.format(entry.webhook_token)
    if entry.is_active and entry.webhook_method:
        pipe.set(hook_key, hook_value(entry.workflow_id, entry.owner_id, entry.webhook_method, entry.webhook_options))
    else:
        pipe.delete(hook_key)
    pipe.publish(CHANGES_CHANNEL, entry.webhook_token)
    if old_token and old_token != entry.webhook_token:
        pipe.publish(CHANGES_CHANNEL, old_token)


def unpublish(pipe: Pipeline, workflow_id: int, webhook_token: str) -> None:
    pipe.delete(WF_KEY.format(workflow_id), HOOK_KEY.format(webhook_token))
    pipe.publish(CHANGES_CHANNEL, webhook_token)


def hook_value(workflow_id: int, owner_id: int, method: str, options: Mapping[str, Any] | None = None) -> str:
    head = f"{workflow_id}:{owner_id}:{method}"
    return f"{head}:{dumps_str(dict(options))}" if options else head


def parse_hook_value(raw: bytes | str | None) -> HookTarget | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split(":", 3)
    wf, owner = parts[0], parts[1]
    method = parts[2] if len(parts) > 2 else "POST"  # entries written before methods: POST
    options = parts[3] if len(parts) > 3 else ""
    return HookTarget(workflow_id=int(wf), owner_id=int(owner), method=method,
                      options=loads(options) if options else {})


def lookup_hook(redis: Redis, token: str) -> tuple[HookTarget | None, bool]:
    """(target, authoritative): a miss is authoritative only while the catalog is known complete."""
    raw, ready = redis.mget(hook_lookup_keys(token))
    return parse_hook_value(raw), ready is not None


def hook_lookup_keys(token: str) -> list[str]:
    """What `lookup_hook` reads (MGET), for a client of another kind (asyncio) to read the same."""
    return [HOOK_KEY.format(token), READY_KEY]


def lookup_owner(redis: Redis, workflow_id: int) -> tuple[int | None, bool]:
    pipe = redis.pipeline(transaction=False)
    pipe.hget(WF_KEY.format(workflow_id), "owner")
    pipe.exists(READY_KEY)
    owner, ready = pipe.execute()
    return (int(owner) if owner is not None else None), bool(ready)


def lookup_workflow(redis: Redis, workflow_id: int) -> tuple[CatalogEntry | None, bool]:
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(WF_KEY.format(workflow_id))
    pipe.exists(READY_KEY)
    raw, ready = pipe.execute()
    return entry_from_hash(workflow_id, raw), bool(ready)


def entry_from_hash(workflow_id: int, raw: Mapping[bytes, bytes] | None) -> CatalogEntry | None:
    """The entry from its `aos:wf:{id}` hash as HGETALL answers it (None when it has no fields)."""
    if not raw:
        return None
    return CatalogEntry(
        workflow_id=workflow_id, owner_id=int(raw[b"owner"]), is_active=raw[b"active"] == b"1",
        version=int(raw[b"version"]), definition=loads(raw[b"definition"]), webhook_token="",
    )
