"""Webhook targets the ingress has looked up, kept in memory while it hears of every change.

A webhook's first Redis round trip is the lookup of its token (catalog.hook_lookup_keys). The
ingress remembers what it found and answers the next webhook for that token from memory, for as
long as it is subscribed to the catalog's change channel: every change of a hook entry is
announced there in the same MULTI as the change (catalog.publish / unpublish), and the entry is
forgotten when its announcement arrives (a workflow deactivated or deleted stops taking webhooks
a moment after the change is in Redis, as before).

While the subscription is not up (at start, or lost), nothing is remembered and every webhook
looks its token up in Redis; when it comes back, everything remembered before is forgotten, since
announcements may have been missed. A lookup that an announcement overtook is not remembered.
Entries also expire after `ttl_s` (a bound on staleness should the channel ever go quiet without
failing), and at most `max_entries` are kept. Misses are never remembered: an unknown token always
costs a lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from automateos_common import catalog

from .listen import follow


class HookCache:
    def __init__(self, redis_url: str, *, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.redis_url = redis_url
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.live = False  # subscribed: announcements are arriving
        self.generation = 0  # bumped by every announcement and (re)subscription
        self._entries: dict[str, tuple[catalog.HookTarget, float]] = {}
        self._closed = False
        # Called with each token forgotten (catalog.FORGET_ALL: everything), so what others keep along
        # with a hook entry (hookauth's opened credentials) is forgotten with it.
        self.listeners: list[Callable[[str], None]] = []

    def get(self, token: str) -> catalog.HookTarget | None:
        if not self.live:
            return None
        hit = self._entries.get(token)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            self._entries.pop(token, None)
            return None
        return hit[0]

    def remember(self, token: str, target: catalog.HookTarget, generation: int) -> None:
        """Keep `target`, looked up when `generation` was current, unless something changed since."""
        if not self.live or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (target, time.monotonic() + self.ttl_s)

    def forget(self, token: str) -> None:
        self.generation += 1
        if token == catalog.FORGET_ALL:
            self._entries.clear()
        else:
            self._entries.pop(token, None)
        for listener in self.listeners:
            listener(token)

    def _down(self) -> None:
        self.live = False
        self.generation += 1
        self._entries.clear()
        for listener in self.listeners:
            listener(catalog.FORGET_ALL)

    def close(self) -> None:
        """Stop `run` (redis-py may turn a cancellation into a connection error: a flag is sure)."""
        self._closed = True
        self._down()

    async def run(self, *, retry_s: float = 1.0) -> None:
        """Listen for announcements until closed or cancelled; reconnect after a failure."""

        def subscribed() -> None:
            self._down()  # whatever was remembered before may have missed announcements
            self.live = True

        await follow(self.redis_url, catalog.CHANGES_CHANNEL, closed=lambda: self._closed, live=lambda: self.live,
                     subscribed=subscribed, message=self.forget, down=self._down, retry_s=retry_s,
                     lost="hook cache: catalog announcements lost; looking every webhook up")
