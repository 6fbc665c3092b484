"""Applications (API keys) and pipelines.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 21:14:25.991017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import workflow_service.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("revoked_at", workflow_service.db.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_application_key_hash")),
        sa.UniqueConstraint("uuid", name=op.f("uq_application_uuid")),
    )
    op.create_table(
        "pipeline",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("docker_image_url", sa.String(length=2000), nullable=True),
        sa.Column("repository_ssh_url", sa.String(length=2000), nullable=True),
        sa.Column("repository_branch", sa.String(length=100), nullable=True),
        sa.Column("repository_script", sa.String(length=4096), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column(
            "arguments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline")),
        sa.UniqueConstraint("uuid", name=op.f("uq_pipeline_uuid")),
    )


def downgrade() -> None:
    op.drop_table("pipeline")
    op.drop_table("application")
