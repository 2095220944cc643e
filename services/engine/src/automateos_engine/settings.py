from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from automateos_common.secretstore import SecretSettings

if TYPE_CHECKING:  # the supervisor reads these settings without importing the engine itself
    from .driver import EngineConfig


class EngineSettings(SecretSettings):
    worker_class: Literal["fork", "simple"] = Field(
        default="simple",
        description="simple: jobs run in the worker process (fast; a worker that dies is restarted and its run "
                    "recovered through its lease); fork: a work-horse process per job (isolation, about 25 ms a job).",
    )
    engine_workers: int = Field(default=1, ge=1, le=64, description="Worker processes `automateos-engine run` starts.")
    worker_concurrency: int = Field(
        default=1, ge=1, le=256,
        description="Runs one simple worker executes at once. 1: one at a time on the worker's own thread, under "
                    "RQ's job timeout (the fastest for short runs: threads of one process share its interpreter "
                    "lock). More: each run on a thread of its own, for workflows that mostly wait on slow APIs. "
                    "The fork class always runs one.",
    )
    engine_host: str = Field(default="127.0.0.1", description="Bind address of the engine health endpoint.")
    engine_port: int = Field(default=8004, description="Port of the engine health endpoint.")
    recovery_timeout_s: float = Field(
        default=10.0, ge=1.0, le=3600.0,
        description="A run whose worker died is running again on another worker within about this long "
                    "(its lease is 70% of it, renewed twice a second; every worker's reaper looks once a second).",
    )
    delay_inline_max_s: float = Field(
        default=2.0, ge=0.0, le=60.0,
        description="Waits (delays, retry back-offs) up to this are waited on the worker; longer ones park the run.",
    )
    node_timeout_s: float = Field(
        default=300.0, gt=0, le=86_400.0, description="An attempt's time limit when the node sets no timeout_s.",
    )
    max_interruptions: int = Field(
        default=5, ge=1, le=100,
        description="A run whose worker died this many times while running it fails instead of being picked up again.",
    )

    def engine_config(self) -> EngineConfig:
        from .driver import EngineConfig

        lease = max(0.5, self.recovery_timeout_s * 0.7)
        return EngineConfig(lease_s=lease, heartbeat_s=min(0.5, lease / 4), delay_inline_max_s=self.delay_inline_max_s,
                            node_timeout_s=self.node_timeout_s, run_max_steps=self.run_max_steps,
                            max_interruptions=self.max_interruptions)

    def reaper_interval_s(self) -> float:
        return min(1.0, self.recovery_timeout_s / 10)


@lru_cache(maxsize=1)
def get_settings() -> EngineSettings:
    return EngineSettings()
