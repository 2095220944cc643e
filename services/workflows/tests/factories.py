from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from automateos_workflows import crud
from automateos_workflows.models import Workflow
from automateos_workflows.schemas import WorkflowCreate


def definition(url: str = "https://api.example.com/data") -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook"},
                      {"id": "a", "type": "http_request", "config": {"url": url}}]}


def make_workflow(engine: Engine, *, owner_id: int = 1, active: bool = True, name: str = "wf") -> Workflow:
    with Session(engine, expire_on_commit=False) as session:
        wf = crud.create_workflow(session=session, owner_id=owner_id,
                                  data=WorkflowCreate(name=name, definition=definition(), is_active=active))
        session.commit()
        return wf
