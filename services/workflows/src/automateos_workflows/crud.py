"""Data access. Functions are keyword-only, take a session and never commit: routes own transactions.

Ownership is part of every query: another user's workflow or run is simply not found (404).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from automateos_common.errors import NotFoundError, NotOwnedError
from automateos_common.jsonutil import utcnow
from automateos_common.runs import RunState, RunStatus, StepState, StepStatus

from .models import Execution, ExecutionStep, Workflow
from .schemas import WorkflowCreate, WorkflowUpdate


def new_webhook_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, URL-safe


def create_workflow(*, session: Session, owner_id: int, data: WorkflowCreate) -> Workflow:
    wf = Workflow(owner_id=owner_id, name=data.name, description=data.description, is_active=data.is_active,
                  definition=data.definition, webhook_token=new_webhook_token())
    session.add(wf)
    session.flush()
    return wf


def get_workflow(*, session: Session, owner_id: int, workflow_id: int) -> Workflow:
    wf = session.get(Workflow, workflow_id)
    if wf is None:
        raise NotFoundError("Workflow not found")
    if wf.owner_id != owner_id:  # the same 404, audited (access.denied)
        raise NotOwnedError("Workflow not found", resource="workflow", resource_id=workflow_id, owner_id=wf.owner_id)
    return wf


def list_workflows(*, session: Session, owner_id: int, limit: int, offset: int) -> tuple[list[Workflow], int]:
    total = session.exec(select(func.count()).select_from(Workflow).where(Workflow.owner_id == owner_id)).one()
    items = session.exec(
        select(Workflow).where(Workflow.owner_id == owner_id).order_by(col(Workflow.id).desc())
        .offset(offset).limit(limit)
    ).all()
    return list(items), int(total)


def update_workflow(*, session: Session, wf: Workflow, data: WorkflowUpdate) -> Workflow:
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "is_active", "definition"):
        if key in changes and changes[key] is None:
            changes.pop(key)  # null for a required field means "unchanged"
    for key, value in changes.items():
        setattr(wf, key, value)
    if changes:
        wf.version += 1
        wf.updated_at = utcnow()
        session.add(wf)
        session.flush()
    return wf


def delete_workflow(*, session: Session, wf: Workflow) -> None:
    session.delete(wf)
    session.flush()


def list_runs(*, session: Session, owner_id: int, workflow_id: int, limit: int,
              offset: int) -> tuple[list[Execution], int]:
    where = (Execution.workflow_id == workflow_id, Execution.owner_id == owner_id)
    total = session.exec(select(func.count()).select_from(Execution).where(*where)).one()
    items = session.exec(
        select(Execution).where(*where)
        .order_by(col(Execution.created_at).desc(), col(Execution.id).desc()).offset(offset).limit(limit)
    ).all()
    return list(items), int(total)


def get_run(*, session: Session, owner_id: int, run_id: str) -> RunState | None:
    """The run as recorded (values cut for history), steps in execution order; None if not the caller's."""
    ex = session.get(Execution, run_id)
    if ex is None or ex.owner_id != owner_id:
        return None
    steps = session.exec(
        select(ExecutionStep).where(ExecutionStep.execution_id == run_id)
        .order_by(col(ExecutionStep.position), col(ExecutionStep.key))
    ).all()
    return RunState(
        id=ex.id, workflow_id=ex.workflow_id, owner_id=ex.owner_id, trigger=ex.trigger,
        status=RunStatus(ex.status), payload=ex.payload,
        # Rows recorded before the whole trigger was kept have its payload only.
        trigger_data=ex.trigger_data if ex.trigger_data is not None else {"payload": ex.payload},
        result=ex.result, error_message=ex.error_message,
        created_at=ex.created_at, started_at=ex.started_at, completed_at=ex.completed_at,
        workflow_version=ex.workflow_version, rev=ex.rev, resume_at=ex.resume_at, replay_of=ex.replay_of,
        steps=[StepState(node_id=s.node_id, type=s.type, position=s.position, status=StepStatus(s.status),
                         input=s.input, output=s.output, error=s.error, attempts=s.attempts,
                         started_at=s.started_at, completed_at=s.completed_at, note=s.note,
                         iteration=s.iteration, loop=s.loop, branch=s.branch, resume_at=s.resume_at,
                         attempt_log=s.attempt_log or [], error_kind=s.error_kind, stopped=s.stopped)
               for s in steps],
    )


def run_owner(*, session: Session, run_id: str) -> int | None:
    """Whose recorded run this is (None: no such run): for the audit of someone else's request."""
    ex = session.get(Execution, run_id)  # usually in the session already (get_run loaded it)
    return ex.owner_id if ex is not None else None


def catalog_fields(wf: Workflow) -> dict[str, Any]:
    return {"id": wf.id, "owner_id": wf.owner_id, "is_active": wf.is_active, "version": wf.version,
            "definition": wf.definition, "webhook_token": wf.webhook_token}
