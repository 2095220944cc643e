from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from automateos_common.settings import CommonSettings


class IngressSettings(CommonSettings):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest accepted request body (413 above).")


@lru_cache(maxsize=1)
def get_settings() -> IngressSettings:
    return IngressSettings()
