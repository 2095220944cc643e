"""credentials: named, owner-only credentials whose values are sealed (envelope encryption)

Revision ID: workflows_0003
Revises: workflows_0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "workflows_0003"
down_revision = "workflows_0002"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.AutoString(length=100), nullable=False),
        sa.Column("type", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("public", JSONType, nullable=False),
        sa.Column("secret_ref", sa.Text(), nullable=False),
        sa.Column("hint", sqlmodel.AutoString(length=16), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),
    )
    op.create_index("ix_credentials_owner_id", "credentials", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_credentials_owner_id", table_name="credentials")
    op.drop_table("credentials")
