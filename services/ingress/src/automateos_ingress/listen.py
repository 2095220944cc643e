"""Following a Redis pub/sub channel for the life of the ingress: the hook cache's catalog announcements
and the sync webhooks' run announcements both need the same loop (reconnect, bounded waits, clean close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis as AsyncRedis

log = logging.getLogger(__name__)


async def follow(redis_url: str, channel: str, *, closed: Callable[[], bool], live: Callable[[], bool],
                 subscribed: Callable[[], None], message: Callable[[str], None], down: Callable[[], None],
                 lost: str, retry_s: float = 1.0) -> None:
    """Until `closed()`: `subscribed()` after each (re)subscription, `message(data)` per announcement,
    `down()` whenever the subscription ends (announcements may be missed until the next `subscribed()`).
    A failure is logged (`lost`, while `live()`) and retried after `retry_s`."""
    while not closed():
        client = AsyncRedis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=5)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                while not closed():  # a bounded wait per message: closing never waits long
                    got = await pubsub.get_message(timeout=0.5)
                    if got is None:
                        continue
                    if got["type"] == "subscribe":
                        subscribed()
                    elif got["type"] == "message":
                        data = got["data"]
                        message(data.decode() if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the caller's fallback holds until it is back
            if live():
                log.warning("%s (%s)", lost, exc)
        finally:
            down()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(client.aclose(), 1.0)
        if not closed():
            await asyncio.sleep(retry_s)
