"""durable runs: waits, pauses, replays, loop iterations, attempt log

executions gains resume_at, replay_of, trigger_data. execution_steps is keyed by the step's key
(the node id, or `node[i]` for iteration i of a loop's body) instead of the node id, and gains
iteration, loop, branch, resume_at, attempt_log, error_kind, stopped. Existing steps get
key = node_id.

Revision ID: workflows_0002
Revises: workflows_0001
Create Date: 2026-11-22
"""
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "workflows_0002"
down_revision = "workflows_0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# PostgreSQL's name for the primary key that workflows_0001 (and a table built from the models) has.
STEPS_PK = "execution_steps_pkey"


def _steps(pk: str) -> sa.Table:
    """execution_steps with every column of this revision and its primary key on (execution_id, pk).

    SQLite cannot change a primary key in place, so there a batch copies the table (nothing points
    at it). It is given this shape, not the reflected one: reflection would keep the old key's
    primary-key flag on its column.
    """
    return sa.Table(
        "execution_steps", sa.MetaData(),
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("executions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
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
        sa.Column("key", sa.String(96), nullable=pk != "key"),
        *_new_step_columns(),
        sa.PrimaryKeyConstraint("execution_id", pk, name=STEPS_PK),
    )


def _new_step_columns() -> list[sa.Column[Any]]:  # fresh Column objects: one belongs to one table
    return [
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("loop", sa.String(64), nullable=True),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_log", JSONType, nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("stopped", sa.Boolean(), nullable=False, server_default=sa.false()),
    ]


def _set_steps_pk(pk: str, *, drop: tuple[str, ...] = ()) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    kw: dict[str, Any] = {"recreate": "always", "copy_from": _steps(pk)} if sqlite else {"recreate": "never"}
    with op.batch_alter_table("execution_steps", **kw) as batch:
        if pk == "key":
            batch.alter_column("key", existing_type=sa.String(96), nullable=False)
        if not sqlite:
            batch.drop_constraint(STEPS_PK, type_="primary")
            batch.create_primary_key(STEPS_PK, ["execution_id", pk])
        for column in drop:
            batch.drop_column(column)


def upgrade() -> None:
    # Only ADD COLUMN here, never a rebuild: on SQLite a rebuilt `executions` would be dropped, and
    # with foreign keys on that deletes every step (ON DELETE CASCADE).
    with op.batch_alter_table("executions", recreate="never") as batch:
        batch.add_column(sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("replay_of", sa.String(36), nullable=True))
        batch.add_column(sa.Column("trigger_data", JSONType, nullable=True))
    op.create_index("ix_executions_replay_of", "executions", ["replay_of"])

    with op.batch_alter_table("execution_steps", recreate="never") as batch:
        batch.add_column(sa.Column("key", sa.String(96), nullable=True))
        for column in _new_step_columns():
            batch.add_column(column)
    op.execute("UPDATE execution_steps SET key = node_id")
    _set_steps_pk("key")


def downgrade() -> None:
    # Loop iterations have no row of their own in workflows_0001's shape (one row per node).
    op.execute("DELETE FROM execution_steps WHERE iteration IS NOT NULL")
    _set_steps_pk("node_id", drop=("key", *(c.name for c in _new_step_columns())))

    op.drop_index("ix_executions_replay_of", table_name="executions")
    with op.batch_alter_table("executions", recreate="never") as batch:
        for column in ("trigger_data", "replay_of", "resume_at"):
            batch.drop_column(column)
