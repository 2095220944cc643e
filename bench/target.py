"""What a bench measures: a `Target` is a system with webhooks that start recorded runs.

The ingress phase (bench.phases.ingress_phase) drives any Target with the same load
generator, so a peer can be measured the same way later. To add one (n8n, say):

    class N8nTarget(Target):
        name = "n8n"
        routes = ("direct",)
        def start(self): ...        # its server and database (n8n: `n8n start`, queue mode for workers)
        def stop(self): ...         # everything start() started, even after a failure half-way
        def webhook(self, label, route="direct"): ...   # a workflow of one Webhook node; its production URL
        def run_counts(self, hook): ...                 # executions of that workflow (its REST API or DB)
        def memory(self): ...                           # its processes' trees (bench.proc.tree_memory)
        def backlog(self): ...                          # runs waiting in its queue (n8n queue mode: Bull)
        def discard_backlog(self): ...

and choose it in bench.cli. The engine phase needs control over workers and the queue, so
it is specific to AutomateOS (bench.automateos.AutomateOS).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from .proc import Memory


@dataclass(frozen=True)
class Webhook:
    label: str
    url: str  # what the load generator POSTs to
    key: str  # the target's own handle on the workflow behind it (AutomateOS: its id)


@dataclass(frozen=True)
class RunCounts:
    recorded: int  # runs the target has a record of, in any state
    finished: int  # ... of which have ended (succeeded, failed or cancelled)
    succeeded: int
    first_started: datetime | None = None
    last_completed: datetime | None = None

    @property
    def window_s(self) -> float | None:
        """From the first run's start to the last one's end."""
        if self.first_started is None or self.last_completed is None:
            return None
        return (self.last_completed - self.first_started).total_seconds()


@dataclass(frozen=True)
class ProcessMemory:
    name: str
    memory: Memory
    in_total: bool  # part of the stack's total (not: the databases, dev-only tools)
    note: str = ""


class Target(ABC):
    name: str
    routes: tuple[str, ...] = ("direct",)  # ways to reach its webhooks; "direct" is the service's own port

    @abstractmethod
    def start(self) -> None:
        """Start everything; ready for load when it returns."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything start() started; safe to call after a partial start, and twice."""

    @abstractmethod
    def webhook(self, label: str, route: str = "direct") -> Webhook:
        """A fresh workflow whose webhook starts the cheapest run the target has (a trigger only)."""

    @abstractmethod
    def run_counts(self, hook: Webhook) -> RunCounts:
        """Runs of the workflow behind `hook`, as the target's own records show them."""

    @abstractmethod
    def memory(self) -> list[ProcessMemory]:
        """Resident memory of each of its processes (trees)."""

    @abstractmethod
    def backlog(self) -> int:
        """Accepted runs not executed yet (queued or executing)."""

    @abstractmethod
    def discard_backlog(self) -> int:
        """Drop the queued runs (after a phase whose backlog would take too long to drain); how many."""

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each of its processes (trees), by name; optional."""
        return {}

    def completed_times(self, hook: Webhook) -> list[datetime] | None:  # noqa: ARG002
        """When each ended run of the workflow behind `hook` ended (UTC), as its records show; optional
        (None: the target cannot tell, so no completed/s during the load)."""
        return None

    def __enter__(self) -> Target:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
