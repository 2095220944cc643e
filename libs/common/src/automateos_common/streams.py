"""A consumer group's member that records a Redis stream's entries into a database, at least once.

Used by the workflows service's run recorder (`aos:events`) and auth's security-event recorder
(`aos:audit`). Entries are read as the group's member `consumer` (replicas share the work), handed
to `record` in batches, and acknowledged by `record` only after its database commit, so a crash
re-delivers them; `recover` takes over what a dead member read and never acknowledged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
CLAIM_IDLE_MS = 60_000


class StreamRecorder(ABC):
    label = "stream recorder"  # for the log lines

    def __init__(self, redis: Redis, *, stream: str, group: str, batch: int = 500, consumer: str | None = None,
                 claim_idle_ms: int = CLAIM_IDLE_MS, linger_ms: int = 0) -> None:
        self.redis = redis
        self.stream, self.group = stream, group
        self.batch = batch
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.linger_s = linger_ms / 1000  # after a short batch, let entries gather before reading again
        self.last_entries = 0  # entries the last step() read

    @abstractmethod
    def record(self, entries: list[Entry]) -> int:
        """Write the entries to the database, then acknowledge them; returns what was written."""

    def acknowledge(self, pipe: Any, entry_ids: list[bytes]) -> None:
        """Queue the acknowledgement (and deletion) of entries in `pipe`, after the commit."""
        pipe.xack(self.stream, self.group, *entry_ids)
        pipe.xdel(self.stream, *entry_ids)

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int | None = 1000) -> int:
        """Record one batch of new entries."""
        resp: Any = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.batch,
                                          block=block_ms)
        entries = resp[0][1] if resp else []
        self.last_entries = len(entries)
        return self.record(entries)

    def recover(self) -> int:
        """Take over entries another (dead) member read but never acknowledged, and our own."""
        n = 0
        own: Any = self.redis.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.batch)
        if own and own[0][1]:
            n += self.record(own[0][1])
        start = "0-0"
        while True:
            claim: Any = self.redis.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                               start_id=start, count=self.batch)
            start, claimed = claim[0], claim[1]
            n += self.record([e for e in claimed if e[1]])
            if start in (b"0-0", "0-0"):
                return n

    def drain(self) -> int:
        """Everything in the stream now (tests; the service's thread runs `run_forever`)."""
        self.ensure_group()
        n = self.recover()
        while True:
            n += self.step(block_ms=None)
            if not self.last_entries:
                return n

    def on_start(self) -> None:  # noqa: B027 (a hook: most recorders need nothing here)
        """Called on the recording thread before its loop."""

    def run_forever(self, stop: threading.Event) -> None:
        self.on_start()
        ready = False
        next_recover = 0.0
        while not stop.is_set():
            try:
                if not ready:
                    self.ensure_group()
                    ready = True
                if time.monotonic() >= next_recover:
                    self.recover()  # entries a dead replica read but never recorded
                    next_recover = time.monotonic() + self.claim_idle_ms / 1000
                self.step()
                if 0 < self.last_entries < self.batch and self.linger_s:
                    stop.wait(self.linger_s)
            except (RedisError, OSError) as exc:
                log.warning("%s: Redis unavailable (%s); retrying", self.label, type(exc).__name__)
                ready = False
                stop.wait(1.0)
            except Exception:
                log.exception("%s: batch failed; retrying", self.label)
                stop.wait(1.0)
