"""Request parameters more than one service takes, with the bounds the storage behind them has."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

# The largest integer id or offset the API takes (above it: 422). Ids are PostgreSQL `integer`s, so no
# larger id exists; and a number beyond 64 bits in a query overflowed in SQLite's driver (an offset of
# 2**63 was a 500, found by the schemathesis tests), as it does in PostgreSQL's `bigint` OFFSET.
MAX_DB_INT = 2**31 - 1

WorkflowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A workflow's id.")]
CredentialId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A credential's id.")]


class Page:
    """`?limit&offset` of a listing (limit 1-200, default 50; offset within MAX_DB_INT)."""

    def __init__(self, limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=MAX_DB_INT)) -> None:
        self.limit = limit
        self.offset = offset


PageDep = Annotated[Page, Depends()]
