"""Wire models of the workflows API (API.md, "Workflows" and "Triggers and runs")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from automateos_common.credentials import NAME_RE, CredentialType
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


class SchedulePublic(BaseModel):
    """A `schedule` trigger's schedule, as the scheduler reads it, and its next fire times."""

    cron: str | None = Field(description="The cron expression, normalised (aliases expanded); null for an interval.")
    interval_seconds: int | None = Field(description="The interval; null for a cron expression.")
    offset_seconds: int = Field(description="With an interval: its instants are epoch + offset + k * interval.")
    timezone: str
    missed: Literal["skip", "fire_once"]
    next_fire_times: list[str] = Field(
        description="The next 5 fire times, ISO 8601 in `timezone` with its offset; empty while the workflow is "
                    "inactive (nothing fires)."
    )


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
    schedule: SchedulePublic | None = Field(default=None, description="Set when the trigger is a `schedule` node.")


class WorkflowsPublic(BaseModel):
    items: list[WorkflowPublic]
    total: int


RunStatusLiteral = Literal["queued", "running", "waiting", "paused", "success", "failed", "cancelled"]
StepStatusLiteral = Literal["pending", "running", "waiting", "success", "failed", "skipped", "cancelled"]


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
    resume_at: datetime | None = None
    replay_of: str | None = None


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
    iteration: int | None = Field(default=None, description="Which item of its loop this step ran for.")
    loop: str | None = Field(default=None, description="The loop whose body this step belongs to.")
    branch: str | None = Field(default=None, description="The named output the node took.")
    resume_at: str | None = Field(default=None, description="While waiting: when the step continues.")
    attempt_log: list[dict[str, Any]] = Field(default_factory=list, description="One entry per attempt.")
    error_kind: str | None = Field(
        default=None, description="timeout | connection_error | 5xx | 429; null for any other error")
    stopped: bool = Field(default=False, description="The node stopped its path: nothing after it runs.")


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
    resume_at: str | None = Field(default=None, description="While waiting (or paused out of a wait): "
                                                            "when the run continues.")
    replay_of: str | None = Field(default=None, description="The execution this one replays.")
    pending_action: Literal["cancel", "pause"] | None = Field(
        default=None, description="A cancel or pause asked for while a worker holds the run; it applies it "
                                  "between steps.")
    steps: list[StepPublic]


class ReplayRequest(BaseModel):
    """POST /api/v1/logs/{id}/replay: `failed` reuses what succeeded before the failure; `start` reruns all."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Literal["failed", "start"] = Field(default="failed", alias="from")


class ReplayAccepted(BaseModel):
    execution_id: str
    status: Literal["queued"]
    replay_of: str


class NodeTypePublic(BaseModel):
    type: str
    kind: Literal["trigger", "action"]
    title: str
    description: str
    config_schema: dict[str, Any]


# ----------------------------------------------------------------- credentials (issue 5)

CredentialName = Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]


class CredentialCreate(BaseModel):
    """`data` is checked against the type's own schema (automateos_common.credentials)."""

    model_config = ConfigDict(extra="forbid")

    name: CredentialName = Field(description="Unique per owner; letters, digits, '_', '.', '-', starting with a "
                                             "letter (a node may reference it by this name).")
    type: CredentialType
    data: dict[str, Any] = Field(description="The type's fields, secret ones included (write-only).")


class CredentialUpdate(BaseModel):
    """PUT/PATCH: fields left out keep their value; `data` replaces the whole value (every field of the type)."""

    model_config = ConfigDict(extra="forbid")

    name: CredentialName | None = None
    data: dict[str, Any] | None = None


class WorkflowRef(BaseModel):
    id: int
    name: str


class CredentialPublic(_Timestamps):
    id: int
    name: str
    type: CredentialType
    fields: dict[str, Any] = Field(description="The type's non-secret fields.")
    hint: str | None = Field(description="`****` and the value's last 4 characters; null for a short value.")
    used_by: list[WorkflowRef] = Field(description="The owner's workflows whose definition references it.")
    created_at: datetime
    updated_at: datetime


class CredentialsPublic(BaseModel):
    items: list[CredentialPublic]
    total: int
