"""Tables owned by the workflows service: workflows, their runs (executions) and run steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from automateos_common.db import service_metadata
from automateos_common.jsonutil import utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Workflow(SQLModel, table=True):
    __tablename__ = "workflows"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(index=True)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    is_active: bool = Field(default=True)
    definition: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    # The webhook URL's secret (256 bits, URL-safe); it never changes for the workflow's life.
    webhook_token: str = Field(max_length=64, unique=True, index=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Execution(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_workflow_created", "workflow_id", "created_at"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    workflow_id: int = Field(
        sa_column=Column(ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    )
    owner_id: int = Field(index=True)
    status: str = Field(max_length=16)
    trigger: str = Field(max_length=16)
    payload: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    result: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    workflow_version: int | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    started_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    duration_ms: int | None = None
    # Version of the Redis state this row was written from; older writes never overwrite newer.
    rev: int = Field(default=0)
    resume_at: datetime | None = _ts()
    replay_of: str | None = Field(default=None, sa_column=Column(String(36), nullable=True, index=True))
    # The whole trigger {payload, headers, query, method}: what a replay starts from. Null on rows
    # recorded before it was kept (a replay then has the payload only).
    trigger_data: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))


class ExecutionStep(SQLModel, table=True):
    __tablename__ = "execution_steps"

    execution_id: str = Field(
        sa_column=Column(String(36), ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True)
    )
    # StepState.key: the node id, or `node[i]` for iteration i of a loop's body (64 + "[999999]" fits).
    key: str = Field(sa_column=Column(String(96), primary_key=True))
    node_id: str = Field(sa_column=Column(String(64), nullable=False))
    position: int
    type: str = Field(max_length=64)
    status: str = Field(max_length=16)
    # input/output as history shows them: cut to a marker above AUTOMATEOS_STEP_OUTPUT_MAX_BYTES.
    input: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    output: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = Field(default=0)
    started_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    iteration: int | None = None
    loop: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    branch: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    resume_at: datetime | None = _ts()
    attempt_log: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error_kind: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    stopped: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))


class Credential(SQLModel, table=True):
    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(index=True)
    name: str = Field(max_length=100)
    type: str = Field(max_length=32)
    # The type's non-secret fields (header name, username, token URL ...), shown as they are.
    public: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    # The SecretStore's reference to the secret fields: the sealed envelope itself (database store), or the ARN
    # of the AWS Secrets Manager secret that holds it (aws store).
    secret_ref: str = Field(sa_column=Column(Text, nullable=False))
    hint: str | None = Field(default=None, max_length=16)  # "****abcd", or none for a short value
    version: int = Field(default=1)  # +1 on every change of the value: the engine's cache key
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


# This service's tables only (migrations compare against this, not SQLModel's global metadata).
_TABLES = (Workflow.__table__, Execution.__table__, ExecutionStep.__table__, Credential.__table__)  # type: ignore[attr-defined]
METADATA = service_metadata(*_TABLES)
