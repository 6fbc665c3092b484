"""Pipeline runs with their states, inputs and artifacts; pipeline files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:26:42.697326
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import workflow_service.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_count", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "pipeline_file",
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipeline.id"],
            name=op.f("fk_pipeline_file_pipeline_id_pipeline"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_file")),
        sa.UniqueConstraint("pipeline_id", "name", name=op.f("uq_pipeline_file_pipeline_id")),
        sa.UniqueConstraint("uuid", name=op.f("uq_pipeline_file_uuid")),
    )
    op.create_table(
        "pipeline_run",
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column(
            "defines",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("progress", sa.SmallInteger(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(length=2000), nullable=True),
        sa.Column("started_at", workflow_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", workflow_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", workflow_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_claim", sa.String(length=32), nullable=True),
        sa.Column("std_out", sa.Text(), nullable=False),
        sa.Column("std_err", sa.Text(), nullable=False),
        sa.Column("std_out_size", sa.BigInteger(), nullable=False),
        sa.Column("std_err_size", sa.BigInteger(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipeline.id"], name=op.f("fk_pipeline_run_pipeline_id_pipeline")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_run")),
        sa.UniqueConstraint("pipeline_id", "sequence", name=op.f("uq_pipeline_run_pipeline_id")),
        sa.UniqueConstraint("uuid", name=op.f("uq_pipeline_run_uuid")),
    )
    with op.batch_alter_table("pipeline_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pipeline_run_state_heartbeat", ["state", "heartbeat_at"], unique=False
        )

    op.create_table(
        "artifact",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_artifact_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_artifact_run_id")),
        sa.UniqueConstraint("uuid", name=op.f("uq_artifact_uuid")),
    )
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifact_run_id"), ["run_id"], unique=False)

    op.create_table(
        "pipeline_run_input",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("key", sa.String(length=1024), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_pipeline_run_input_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_run_input")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_pipeline_run_input_run_id")),
    )
    with op.batch_alter_table("pipeline_run_input", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pipeline_run_input_run_id"), ["run_id"], unique=False)

    op.create_table(
        "pipeline_run_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_pipeline_run_state_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_run_state")),
    )
    with op.batch_alter_table("pipeline_run_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pipeline_run_state_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pipeline_run_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_run_state_run_id"))

    op.drop_table("pipeline_run_state")
    with op.batch_alter_table("pipeline_run_input", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_run_input_run_id"))

    op.drop_table("pipeline_run_input")
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_run_id"))

    op.drop_table("artifact")
    with op.batch_alter_table("pipeline_run", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_run_state_heartbeat")

    op.drop_table("pipeline_run")
    op.drop_table("pipeline_file")
    with op.batch_alter_table("pipeline", schema=None) as batch_op:
        batch_op.drop_column("run_count")
