from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from automateos_common.secretstore import SecretSettings


class WorkflowsSettings(SecretSettings):
    catalog_resync_s: float = Field(default=300.0, gt=0, description="Full rebuild of the Redis catalog, every N s.")
    recorder_batch: int = Field(default=500, ge=1, le=10000, description="Run events the recorder takes per batch.")
    recorder_linger_ms: int = Field(
        default=50, ge=0, le=5000,
        description="After a batch smaller than recorder_batch, wait this long for more events before the next "
                    "one: fewer, larger database writes under load, at most this much later in history.",
    )
    finished_run_ttl_s: int = Field(
        default=300, ge=1, description="How long a finished run stays in Redis after it is in the database."
    )
    recorder_enabled: bool = Field(default=True, description="Run the history recorder in this process.")
    recorder_nice: int = Field(
        default=10, ge=0, le=19,
        description="Scheduling niceness of the recorder's thread (Linux): history writing is background work and "
                    "yields the CPU to webhook intake and the API when they compete for it; 0 leaves it as is.",
    )


@lru_cache(maxsize=1)
def get_settings() -> WorkflowsSettings:
    return WorkflowsSettings()
