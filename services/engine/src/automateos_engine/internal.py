"""GETs to the workflows service's internal API (guarded by the internal secret)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from automateos_common.settings import INTERNAL_HEADER


def internal_get(url: str, secret: str, *, client: httpx.Client | None,
                 failed: Callable[[str, str], Exception]) -> Any:
    """The JSON answer; None for a 404. `failed(why, kind)` makes the exception raised when the service
    is unreachable (kind `connection_error`) or answers anything else (kind `5xx`)."""
    http = client or httpx.Client(timeout=10.0, trust_env=False)
    try:
        resp = http.get(url, headers={INTERNAL_HEADER: secret})
    except httpx.HTTPError as exc:
        raise failed(f"is unreachable ({type(exc).__name__})", "connection_error") from None
    finally:
        if client is None:
            http.close()
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise failed(f"answered {resp.status_code}", "5xx")
    return resp.json()
