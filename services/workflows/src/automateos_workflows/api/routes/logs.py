from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from redis import Redis
from sqlmodel import Session

from automateos_common.auth import CurrentPrincipal
from automateos_common.control import ControlOutcome, RunControl
from automateos_common.errors import ConflictError, NotFoundError, NotOwnedError, ValidationError
from automateos_common.nodes.definition import validate_definition
from automateos_common.openapi import error_responses
from automateos_common.queue import submit_run
from automateos_common.runs import RunState, RunStore

from ... import crud
from ...models import Workflow
from ...replay import build_replay, check_replayable
from ...schemas import ReplayAccepted, ReplayRequest, RunPublic
from ...settings import WorkflowsSettings
from ..deps import ControlDep, QueueDep, RedisDep, RegistryDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/logs", tags=["runs"])

_ERRORS = error_responses(404, 409, descriptions={
    404: "Someone else's or an unknown execution, or its workflow was deleted",
    409: "Not applicable to the execution in its current status",
})


def _live_run(redis: Redis, session: Session, execution_id: str) -> RunState | None:
    """The run from Redis, where it lives from its 202 until its final state is in the database."""
    state = RunStore(redis).load(execution_id) if len(execution_id) <= 64 else None
    if state is not None and session.get(Workflow, state.workflow_id) is None:
        return None  # its workflow was deleted, and with it the run history
    return state


def _find_run(redis: Redis, session: Session, user_id: int, execution_id: str) -> tuple[RunState, bool]:
    """(the caller's run, whether it is live in Redis); 404 for anyone else's."""
    state = _live_run(redis, session, execution_id)
    live = state is not None
    if state is None:
        state = crud.get_run(session=session, owner_id=user_id, run_id=execution_id)
    if state is None:
        owner = crud.run_owner(session=session, run_id=execution_id)
        if owner is not None and owner != user_id:  # the same 404, audited (access.denied)
            raise NotOwnedError("Execution not found", resource="execution", resource_id=execution_id,
                                owner_id=owner)
        raise NotFoundError("Execution not found")
    if state.owner_id != user_id:  # the same 404, audited (access.denied)
        raise NotOwnedError("Execution not found", resource="execution", resource_id=execution_id,
                            owner_id=state.owner_id)
    return state, live


@router.get("/{execution_id}", response_model=RunPublic, responses={404: _ERRORS[404]})
def get_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep,
            settings: SettingsDep) -> Any:
    state, live = _find_run(redis, session, user.user_id, execution_id)
    # Redis keeps every byte the nodes need; history shows big values cut (the database has them cut).
    return state.to_public(limit=settings.step_output_max_bytes if live else None)


def _controlled(execution_id: str, action: str, user_id: int, session: Session, redis: Redis,
                control: RunControl, settings: WorkflowsSettings, response: Response) -> Any:
    state, live = _find_run(redis, session, user_id, execution_id)
    if not live:
        # Only in the database: finished (or its live state is lost); nothing can change it now.
        if state.is_terminal:
            raise ConflictError(f"execution is already {state.status.value}")
        raise ConflictError("the execution is no longer live; it cannot be changed")
    outcome: ControlOutcome = getattr(control, action)(execution_id)
    if not outcome.applied:
        response.status_code = 202  # a worker holds the run and applies the request between steps
    return outcome.run.to_public(limit=settings.step_output_max_bytes)


_CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": RunPublic, "description": "Requested: a worker holds the run and applies it between steps "
                                             "(`pending_action` shows the request)"},
    **_ERRORS,
}


@router.post("/{execution_id}/cancel", response_model=RunPublic, responses=_CONTROL_RESPONSES)
def cancel_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep, control: ControlDep,
               settings: SettingsDep, response: Response) -> Any:
    """Cancel a queued, running, waiting or paused run: 200 when done, 202 when its worker will do it."""
    return _controlled(execution_id, "cancel", user.user_id, session, redis, control, settings, response)


@router.post("/{execution_id}/pause", response_model=RunPublic, responses=_CONTROL_RESPONSES)
def pause_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep, control: ControlDep,
              settings: SettingsDep, response: Response) -> Any:
    """Pause a queued, running or waiting run between steps: 200 when done, 202 when its worker will do it."""
    return _controlled(execution_id, "pause", user.user_id, session, redis, control, settings, response)


@router.post("/{execution_id}/resume", response_model=RunPublic, responses=_ERRORS)
def resume_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep, control: ControlDep,
               settings: SettingsDep, response: Response) -> Any:
    """Queue a paused run again; it continues where it stopped."""
    return _controlled(execution_id, "resume", user.user_id, session, redis, control, settings, response)


@router.post("/{execution_id}/replay", status_code=202, response_model=ReplayAccepted, responses=_ERRORS)
def replay_run(execution_id: str, user: CurrentPrincipal, session: SessionDep, redis: RedisDep, queue: QueueDep,
               registry: RegistryDep, response: Response, body: ReplayRequest | None = None) -> ReplayAccepted:
    """Run a finished execution again with the same trigger, on the workflow's current definition.

    `{"from": "failed"}` (the default) keeps the steps that succeeded before the failure;
    `{"from": "start"}` runs every step again.
    """
    replay_from = body.from_ if body is not None else "failed"
    old, _ = _find_run(redis, session, user.user_id, execution_id)
    check_replayable(old, replay_from)
    wf = crud.get_workflow(session=session, owner_id=user.user_id, workflow_id=old.workflow_id)
    try:
        plan = validate_definition(wf.definition, registry)
    except ValidationError as exc:
        d = exc.details or {}
        raise ConflictError(f"the workflow definition is invalid now: {d.get('field')}: {d.get('issue')}") \
            from None
    replay = build_replay(old, plan, replay_from)
    # Pinned now: the steps copied were chosen against this definition, so the replay must follow it
    # even if the workflow is edited before a worker picks the replay up.
    replay.definition, replay.workflow_version = wf.definition, wf.version
    run = submit_run(redis, queue, replay)
    response.headers["Location"] = f"/api/v1/logs/{run.id}"
    return ReplayAccepted(execution_id=run.id, status="queued", replay_of=old.id)
