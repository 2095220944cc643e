from __future__ import annotations

from fastapi import APIRouter, Response

from automateos_common import schedules
from automateos_common.auth import CurrentPrincipal
from automateos_common.jsonutil import utcnow
from automateos_common.nodes.definition import validate_definition
from automateos_common.openapi import error_responses
from automateos_common.params import WorkflowId

from ... import credentials, crud
from ...models import Workflow
from ...schemas import (
    RunsPublic,
    RunSummary,
    SchedulePublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowsPublic,
    WorkflowUpdate,
)
from ..deps import PageDep, PublisherDep, RegistryDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

NOT_FOUND = error_responses(404, descriptions={404: "No such workflow of the caller's (someone else's is 404 too)"})


NEXT_FIRE_TIMES = 5


def schedule_public(wf: Workflow) -> SchedulePublic | None:
    """The schedule trigger's schedule and next fire times, from the definition (no Redis needed)."""
    sched = schedules.schedule_of(wf.definition)
    if sched is None:
        return None
    try:
        times = sched.times_after(utcnow(), NEXT_FIRE_TIMES) if wf.is_active else []
    except schedules.ScheduleError:
        times = []
    return SchedulePublic(cron=sched.cron, interval_seconds=sched.interval_s, offset_seconds=sched.offset_s,
                          timezone=sched.timezone, missed=sched.missed,
                          next_fire_times=[schedules.local_iso(t, sched.tz) for t in times])


def to_public(wf: Workflow, public_url: str) -> WorkflowPublic:
    return WorkflowPublic.model_validate(
        {**wf.model_dump(), "webhook_url": f"{public_url}/hooks/{wf.webhook_token}", "schedule": schedule_public(wf)}
    )


@router.post("", status_code=201, response_model=WorkflowPublic)
def create_workflow(body: WorkflowCreate, user: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
                    registry: RegistryDep, publisher: PublisherDep) -> WorkflowPublic:
    validate_definition(body.definition, registry)
    credentials.check_definition(session=session, owner_id=user.user_id, definition=body.definition)
    wf = crud.create_workflow(session=session, owner_id=user.user_id, data=body)
    session.commit()
    publisher.publish(wf)
    return to_public(wf, settings.public_url)


@router.get("", response_model=WorkflowsPublic)
def list_workflows(user: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
                   page: PageDep) -> WorkflowsPublic:
    items, total = crud.list_workflows(session=session, owner_id=user.user_id, limit=page.limit, offset=page.offset)
    return WorkflowsPublic(items=[to_public(w, settings.public_url) for w in items], total=total)


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=NOT_FOUND)
def get_workflow(workflow_id: WorkflowId, user: CurrentPrincipal, session: SessionDep,
                 settings: SettingsDep) -> WorkflowPublic:
    wf = crud.get_workflow(session=session, owner_id=user.user_id, workflow_id=workflow_id)
    return to_public(wf, settings.public_url)


@router.put("/{workflow_id}", response_model=WorkflowPublic, responses=NOT_FOUND)
def update_workflow(workflow_id: WorkflowId, body: WorkflowUpdate, user: CurrentPrincipal, session: SessionDep,
                    settings: SettingsDep, registry: RegistryDep, publisher: PublisherDep) -> WorkflowPublic:
    wf = crud.get_workflow(session=session, owner_id=user.user_id, workflow_id=workflow_id)
    if body.definition is not None:
        validate_definition(body.definition, registry)
        credentials.check_definition(session=session, owner_id=user.user_id, definition=body.definition)
    wf = crud.update_workflow(session=session, wf=wf, data=body)
    session.commit()
    publisher.publish(wf)
    return to_public(wf, settings.public_url)


@router.delete("/{workflow_id}", status_code=204, responses=NOT_FOUND)
def delete_workflow(workflow_id: WorkflowId, user: CurrentPrincipal, session: SessionDep,
                    publisher: PublisherDep) -> Response:
    wf = crud.get_workflow(session=session, owner_id=user.user_id, workflow_id=workflow_id)
    assert wf.id is not None
    wf_id, token = wf.id, wf.webhook_token
    crud.delete_workflow(session=session, wf=wf)
    session.commit()
    publisher.unpublish(wf_id, token)
    return Response(status_code=204)


@router.get("/{workflow_id}/logs", response_model=RunsPublic, responses=NOT_FOUND)
def list_workflow_runs(workflow_id: WorkflowId, user: CurrentPrincipal, session: SessionDep,
                       page: PageDep) -> RunsPublic:
    crud.get_workflow(session=session, owner_id=user.user_id, workflow_id=workflow_id)
    items, total = crud.list_runs(session=session, owner_id=user.user_id, workflow_id=workflow_id,
                                  limit=page.limit, offset=page.offset)
    return RunsPublic(items=[RunSummary.model_validate(e, from_attributes=True) for e in items], total=total)
