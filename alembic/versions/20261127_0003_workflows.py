"""Workflows, their pipelines and edges, workflow runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:59:26.482807
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workflow_service.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow")),
        sa.UniqueConstraint("uuid", name=op.f("uq_workflow_uuid")),
    )
    op.create_table(
        "workflow_pipeline",
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipeline.id"], name=op.f("fk_workflow_pipeline_pipeline_id_pipeline")
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflow.id"], name=op.f("fk_workflow_pipeline_workflow_id_workflow")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_pipeline")),
        sa.UniqueConstraint("uuid", name=op.f("uq_workflow_pipeline_uuid")),
    )
    with op.batch_alter_table("workflow_pipeline", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_pipeline_pipeline_id"), ["pipeline_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_workflow_pipeline_workflow_id"), ["workflow_id"], unique=False
        )

    op.create_table(
        "workflow_run",
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflow.id"], name=op.f("fk_workflow_run_workflow_id_workflow")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_run")),
        sa.UniqueConstraint("uuid", name=op.f("uq_workflow_run_uuid")),
    )
    with op.batch_alter_table("workflow_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_run_workflow_id"), ["workflow_id"], unique=False
        )

    op.create_table(
        "workflow_pipeline_dependency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_workflow_pipeline_id", sa.Integer(), nullable=False),
        sa.Column("to_workflow_pipeline_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_workflow_pipeline_id"],
            ["workflow_pipeline.id"],
            name=op.f(
                "fk_workflow_pipeline_dependency_from_workflow_pipeline_id_workflow_pipeline"
            ),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_workflow_pipeline_id"],
            ["workflow_pipeline.id"],
            name=op.f("fk_workflow_pipeline_dependency_to_workflow_pipeline_id_workflow_pipeline"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_pipeline_dependency")),
        sa.UniqueConstraint(
            "from_workflow_pipeline_id",
            "to_workflow_pipeline_id",
            name=op.f("uq_workflow_pipeline_dependency_from_workflow_pipeline_id"),
        ),
    )
    with op.batch_alter_table("workflow_pipeline_dependency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_pipeline_dependency_from_workflow_pipeline_id"),
            ["from_workflow_pipeline_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_workflow_pipeline_dependency_to_workflow_pipeline_id"),
            ["to_workflow_pipeline_id"],
            unique=False,
        )

    op.create_table(
        "workflow_pipeline_run",
        sa.Column("workflow_run_id", sa.Integer(), nullable=False),
        sa.Column("workflow_pipeline_id", sa.Integer(), nullable=False),
        sa.Column("pipeline_run_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_workflow_pipeline_run_pipeline_run_id_pipeline_run"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_pipeline_id"],
            ["workflow_pipeline.id"],
            name=op.f("fk_workflow_pipeline_run_workflow_pipeline_id_workflow_pipeline"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_run_id"],
            ["workflow_run.id"],
            name=op.f("fk_workflow_pipeline_run_workflow_run_id_workflow_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_pipeline_run")),
        sa.UniqueConstraint(
            "pipeline_run_id", name=op.f("uq_workflow_pipeline_run_pipeline_run_id")
        ),
        sa.UniqueConstraint("uuid", name=op.f("uq_workflow_pipeline_run_uuid")),
    )
    with op.batch_alter_table("workflow_pipeline_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_pipeline_run_workflow_run_id"),
            ["workflow_run_id"],
            unique=False,
        )

    op.create_table(
        "workflow_run_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_run_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", workflow_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_run_id"],
            ["workflow_run.id"],
            name=op.f("fk_workflow_run_state_workflow_run_id_workflow_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_run_state")),
    )
    with op.batch_alter_table("workflow_run_state", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_run_state_workflow_run_id"), ["workflow_run_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_run_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_run_state_workflow_run_id"))

    op.drop_table("workflow_run_state")
    with op.batch_alter_table("workflow_pipeline_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_pipeline_run_workflow_run_id"))

    op.drop_table("workflow_pipeline_run")
    with op.batch_alter_table("workflow_pipeline_dependency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_pipeline_dependency_to_workflow_pipeline_id"))
        batch_op.drop_index(batch_op.f("ix_workflow_pipeline_dependency_from_workflow_pipeline_id"))

    op.drop_table("workflow_pipeline_dependency")
    with op.batch_alter_table("workflow_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_run_workflow_id"))

    op.drop_table("workflow_run")
    with op.batch_alter_table("workflow_pipeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_pipeline_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_workflow_pipeline_pipeline_id"))

    op.drop_table("workflow_pipeline")
    op.drop_table("workflow")
