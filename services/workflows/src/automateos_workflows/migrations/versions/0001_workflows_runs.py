"""workflows, executions, execution_steps

Revision ID: workflows_0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "workflows_0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("webhook_token", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workflows_owner_id", "workflows", ["owner_id"])
    op.create_index("ix_workflows_webhook_token", "workflows", ["webhook_token"], unique=True)

    op.create_table(
        "executions",
        sa.Column("id", sa.String(36), primary_key=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("trigger", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("workflow_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("rev", sa.Integer(), nullable=False),
    )
    op.create_index("ix_executions_owner_id", "executions", ["owner_id"])
    op.create_index("ix_executions_workflow_created", "executions", ["workflow_id", "created_at"])

    op.create_table(
        "execution_steps",
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("executions.id", ondelete="CASCADE"),
                  primary_key=True, nullable=False),
        sa.Column("node_id", sa.String(64), primary_key=True, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.AutoString(length=16), nullable=False),
        sa.Column("input", JSONType, nullable=True),
        sa.Column("output", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("execution_steps")
    op.drop_index("ix_executions_workflow_created", table_name="executions")
    op.drop_index("ix_executions_owner_id", table_name="executions")
    op.drop_table("executions")
    op.drop_index("ix_workflows_webhook_token", table_name="workflows")
    op.drop_index("ix_workflows_owner_id", table_name="workflows")
    op.drop_table("workflows")
