"""Threads for step attempts, reused: starting a thread per attempt costs more than a short step.

Each attempt of a node that does I/O runs on a thread of its own while the driver keeps the run's
lease and watches for cancel and pause requests. The threads are daemons, as a plain thread per
attempt was: an attempt that outlives its timeout (a thread cannot be killed) never holds up the
worker's exit. There is no bound: a busy thread is never waited for, a new one is started when
none is idle, and an idle thread ends after `idle_s`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

Task = tuple[Callable[..., Any], tuple[Any, ...]]
log = logging.getLogger(__name__)


class StepThreads:
    def __init__(self, *, idle_s: float = 60.0, name: str = "step") -> None:
        self.idle_s = idle_s
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Task]] = []  # the inboxes of idle threads, newest last
        self._started = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on an idle thread, or a new one. What it raises is its own business: the
        driver's attempts catch everything and report through their outcome queue."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                self._started += 1
                n = self._started
        if inbox is not None:
            inbox.put((fn, args))
            return
        inbox = queue.SimpleQueue()
        inbox.put((fn, args))
        threading.Thread(target=self._serve, args=(inbox,), daemon=True, name=f"{self.name}-{n}").start()

    def _serve(self, inbox: queue.SimpleQueue[Task]) -> None:
        task = inbox.get()
        while True:
            fn, args = task
            try:
                fn(*args)
            except Exception:  # the task's own failure: logged, and this thread stays usable
                log.exception("step thread task %r raised", fn)
            with self._lock:
                self._idle.append(inbox)
            try:
                task = inbox.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # nobody took this thread meanwhile: it ends
                        self._idle.remove(inbox)
                        return
                task = inbox.get()  # taken by `submit` just as the wait ended: its task is on its way

    def _forget(self) -> None:
        """In a forked child (RQ's work-horse): the parent's threads are not there."""
        self._lock = threading.Lock()
        self._idle = []

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


STEP_THREADS = StepThreads()
os.register_at_fork(after_in_child=STEP_THREADS._forget)
