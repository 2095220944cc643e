from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator

from automateos_common.ratelimits import parse_limits
from automateos_common.settings import CommonSettings


class IngressSettings(CommonSettings):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest accepted request body (413 above).")
    # Backpressure (automateos_ingress.admission). About 3.5 KB of Redis a queued run with a small payload, so the
    # default holds about 0.5 GB; the bench's bursts (engine stopped) queue up to ~100,000.
    queue_max_depth: int = Field(
        default=150_000, ge=0, le=100_000_000,
        description="Above this many runs waiting in the queue, webhooks and manual runs are answered 503 "
                    "QUEUE_FULL with Retry-After (accepting resumes below 90 %); 0: no limit "
                    "(AUTOMATEOS_QUEUE_MAX_DEPTH).",
    )
    queue_depth_interval_ms: int = Field(
        default=200, ge=10, le=10_000,
        description="How often each ingress process reads the queue's depth (one Redis call each time) "
                    "(AUTOMATEOS_QUEUE_DEPTH_INTERVAL_MS).",
    )
    webhook_ip_rate_limit: str = Field(
        default="",
        description="Webhooks one client address may send, in the `limits` notation, several separated by `;` "
                    "(e.g. `1000/second;20000/minute`), counted in Redis across ingress processes; 429 "
                    "RATE_LIMITED above; empty: no per-address limit (AUTOMATEOS_WEBHOOK_IP_RATE_LIMIT).",
    )

    @field_validator("webhook_ip_rate_limit")
    @classmethod
    def _check_rate_limit(cls, v: str) -> str:
        parse_limits(v)
        return v.strip()


@lru_cache(maxsize=1)
def get_settings() -> IngressSettings:
    return IngressSettings()
