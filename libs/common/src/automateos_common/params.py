"""Request parameters more than one service takes, with the bounds the storage behind them has."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# The largest integer id or offset the API takes (above it: 422). Ids are PostgreSQL `integer`s, so no
# larger id exists; and a number beyond 64 bits in a query overflowed in SQLite's driver (an offset of
# 2**63 was a 500, found by the schemathesis tests), as it does in PostgreSQL's `bigint` OFFSET.
MAX_DB_INT = 2**31 - 1

WorkflowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A workflow's id.")]
