"""Wire models of the workflows API (API.md, "Workflows" and "Triggers and runs")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from automateos_common.jsonutil import isoformat


class _Timestamps(BaseModel):
    @field_serializer("*", when_used="json")
    def _iso(self, v: Any) -> Any:
        return isoformat(v) if isinstance(v, datetime) else v


class WorkflowBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    is_active: bool = True


class WorkflowCreate(WorkflowBase):
    definition: dict[str, Any]


class WorkflowUpdate(BaseModel):
    """PUT: fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    is_active: bool | None = None
    definition: dict[str, Any] | None = None


class WorkflowPublic(_Timestamps):
    id: int
    name: str
    description: str | None
    is_active: bool
    definition: dict[str, Any]
    webhook_url: str
    version: int
    created_at: datetime
    updated_at: datetime


class WorkflowsPublic(BaseModel):
    items: list[WorkflowPublic]
    total: int


RunStatusLiteral = Literal["queued", "running", "success", "failed", "cancelled"]
StepStatusLiteral = Literal["pending", "running", "success", "failed", "skipped"]


class RunSummary(_Timestamps):
    id: str
    workflow_id: int
    status: RunStatusLiteral
    trigger: str
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class RunsPublic(BaseModel):
    items: list[RunSummary]
    total: int


class StepPublic(BaseModel):
    node_id: str
    type: str
    status: StepStatusLiteral
    input: Any
    output: Any
    error: str | None
    attempts: int
    started_at: str | None
    completed_at: str | None
    note: str | None = None


class RunPublic(BaseModel):
    id: str
    workflow_id: int
    status: RunStatusLiteral
    trigger: str
    payload: Any
    result: Any
    error_message: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    duration_ms: int | None
    workflow_version: int | None
    steps: list[StepPublic]


class NodeTypePublic(BaseModel):
    type: str
    kind: Literal["trigger", "action"]
    title: str
    description: str
    config_schema: dict[str, Any]
