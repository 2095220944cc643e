"""Service-to-service calls: `/internal/*` routes, guarded by a shared secret header.

The gateway never routes `/internal`; the header is a second lock for deployments where a
service port is reachable.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from .errors import NotFoundError
from .settings import INTERNAL_HEADER

__all__ = ["INTERNAL_HEADER", "InternalOnly", "require_internal"]


def require_internal(request: Request,
                     x_automateos_internal: Annotated[str | None, Header()] = None) -> None:
    expected: str = request.app.state.internal_secret
    if not x_automateos_internal or not hmac.compare_digest(x_automateos_internal, expected):
        # 404, not 401: the internal surface is not advertised to strangers.
        raise NotFoundError()


InternalOnly = Annotated[None, Depends(require_internal)]
