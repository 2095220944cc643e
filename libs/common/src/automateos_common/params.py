"""Request parameters more than one service takes, with the bounds the storage behind them has."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# The largest integer id or offset the API takes: ids are 32-bit integers in PostgreSQL, and a larger
# number in a query fails inside the database driver (a 500), not as a miss. Above it: 422.
MAX_DB_INT = 2**31 - 1

WorkflowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A workflow's id.")]
