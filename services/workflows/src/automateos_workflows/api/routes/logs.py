from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from automateos_common.auth import CurrentPrincipal
from automateos_common.errors import NotFoundError
from automateos_common.runs import RunStore

from ... import crud
from ...models import Workflow
from ...schemas import RunPublic
from ..deps import RedisDep, SessionDep

router = APIRouter(prefix="/api/v1/logs", tags=["runs"])


@router.get("/{execution_id}", response_model=RunPublic)
def get_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep) -> Any:
    # Redis holds a run from the moment its 202 is sent until its final state is in the database.
    state = RunStore(redis).load(execution_id) if len(execution_id) <= 64 else None
    if state is not None and session.get(Workflow, state.workflow_id) is None:
        state = None  # its workflow was deleted, and with it the run history
    if state is None:
        state = crud.get_run(session=session, owner_id=user.user_id, run_id=execution_id)
    if state is None or state.owner_id != user.user_id:
        raise NotFoundError("Execution not found")
    return state.to_public()
