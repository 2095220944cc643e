"""The ingress remembers looked-up webhooks only while it hears every catalog change (real Redis)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from automateos_common import catalog
from automateos_common.errors import NotFoundError
from automateos_common.fastredis import PipelinedRedis
from automateos_common.queue import make_queue
from automateos_ingress.accept import Acceptor
from automateos_ingress.hookcache import HookCache

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _url(redis_client) -> str:
    kw = redis_client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw['db']}"


def _publish(redis_client, token: str, *, active: bool = True) -> None:
    with redis_client.pipeline() as pipe:
        catalog.publish(pipe, catalog.CatalogEntry(workflow_id=3, owner_id=9, is_active=active, version=1,
                                                   definition={}, webhook_token=token, webhook_method="POST"))
        pipe.set(catalog.READY_KEY, "1")
        pipe.execute()


async def _until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def _acceptor(redis_client, hooks: HookCache) -> Acceptor:
    return Acceptor(redis=redis_client, queue=make_queue(redis_client, "hooks-test"), workflows_url="http://127.0.0.1:9",
                    internal_secret="x", http=httpx.Client(), aredis=PipelinedRedis.from_url(_url(redis_client)),
                    hooks=hooks)


async def _close(acceptor: Acceptor) -> None:
    assert acceptor.aredis is not None
    await acceptor.aredis.aclose()
    acceptor.http.close()


async def test_a_hook_is_answered_from_memory_until_its_entry_changes(redis_client):
    _publish(redis_client, "tok-a")
    hooks = HookCache(_url(redis_client))
    task = asyncio.create_task(hooks.run())
    try:
        await _until(lambda: hooks.live)
        acceptor = _acceptor(redis_client, hooks)
        assert (await acceptor._resolve_hook_async("tok-a")).workflow_id == 3
        redis_client.delete(catalog.HOOK_KEY.format("tok-a"))  # behind the catalog's back: no announcement
        assert (await acceptor._resolve_hook_async("tok-a")).workflow_id == 3  # so memory answers
        _publish(redis_client, "tok-a", active=False)  # a real change is announced ...
        await _until(lambda: hooks.get("tok-a") is None, timeout=2)  # ... and forgotten at once
        with pytest.raises(NotFoundError):
            await acceptor._resolve_hook_async("tok-a")
        with pytest.raises(NotFoundError):  # misses are never remembered
            await acceptor._resolve_hook_async("tok-a")
        _publish(redis_client, "tok-a")
        assert (await acceptor._resolve_hook_async("tok-a")).owner_id == 9
        await _close(acceptor)
    finally:
        hooks.close()
        task.cancel()
        await asyncio.wait([task], timeout=2)


async def test_nothing_is_remembered_while_not_subscribed_or_across_an_announcement(redis_client):
    hooks = HookCache(_url(redis_client))
    target = catalog.HookTarget(workflow_id=1, owner_id=1)
    hooks.remember("t", target, hooks.generation)
    assert hooks.get("t") is None  # not live: no memory at all
    hooks.live = True
    before = hooks.generation
    hooks.forget("other")  # an announcement while a lookup was under way
    hooks.remember("t", target, before)
    assert hooks.get("t") is None
    hooks.remember("t", target, hooks.generation)
    assert hooks.get("t") == target
    hooks.forget(catalog.FORGET_ALL)
    assert hooks.get("t") is None


async def test_entries_expire_and_a_lost_subscription_forgets_everything(redis_client):
    _publish(redis_client, "tok-b")
    hooks = HookCache(_url(redis_client), ttl_s=0.2)
    task = asyncio.create_task(hooks.run(retry_s=0.1))
    try:
        await _until(lambda: hooks.live)
        acceptor = _acceptor(redis_client, hooks)
        await acceptor._resolve_hook_async("tok-b")
        assert hooks.get("tok-b") is not None
        await asyncio.sleep(0.3)
        assert hooks.get("tok-b") is None  # expired: looked up again next time
        await acceptor._resolve_hook_async("tok-b")
        assert hooks.get("tok-b") is not None
        generation = hooks.generation
        redis_client.client_kill_filter(_type="pubsub")  # the subscription drops
        await _until(lambda: hooks.generation > generation)
        assert hooks.get("tok-b") is None
        await _until(lambda: hooks.live)  # and comes back, remembering nothing from before
        assert hooks.get("tok-b") is None
        await _close(acceptor)
    finally:
        hooks.close()
        task.cancel()
        await asyncio.wait([task], timeout=2)
