"""security events (the audit trail an owner lists: GET /api/v1/users/me/events)

Revision ID: auth_0003
Revises: auth_0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "auth_0003"
down_revision = "auth_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("id", sqlmodel.AutoString(length=32), primary_key=True, nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sqlmodel.AutoString(length=64), nullable=True),
        sa.Column("request_id", sqlmodel.AutoString(length=128), nullable=True),
        sa.Column("service", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_security_events_user_at", "security_events", ["user_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_security_events_user_at", table_name="security_events")
    op.drop_table("security_events")
