from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from automateos_common.settings import CommonSettings


class EngineSettings(CommonSettings):
    worker_class: Literal["fork", "simple"] = Field(
        default="fork",
        description="fork: a work-horse process per job (isolation); simple: jobs run in the worker process (speed).",
    )
    engine_workers: int = Field(default=1, ge=1, le=64, description="Worker processes `automateos-engine run` starts.")
    engine_host: str = Field(default="127.0.0.1", description="Bind address of the engine health endpoint.")
    engine_port: int = Field(default=8004, description="Port of the engine health endpoint.")


@lru_cache(maxsize=1)
def get_settings() -> EngineSettings:
    return EngineSettings()
