from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow_service.db import Base, TimestampedMixin, UTCDateTime, utcnow
from workflow_service.pipelines.models import Pipeline
from workflow_service.runs.models import PipelineRun


class Workflow(TimestampedMixin, Base):
    __tablename__ = "workflow"

    name: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(String(300), default="")
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WorkflowPipeline(TimestampedMixin, Base):
    """A pipeline placed in a workflow; edges between them are WorkflowPipelineDependency."""

    __tablename__ = "workflow_pipeline"

    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflow.id"), index=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id"), index=True)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    pipeline: Mapped[Pipeline] = relationship(lazy="raise")


class WorkflowPipelineDependency(Base):
    """An edge: the run of ``from`` feeds its artifacts to the run of ``to``."""

    __tablename__ = "workflow_pipeline_dependency"
    __table_args__ = (UniqueConstraint("from_workflow_pipeline_id", "to_workflow_pipeline_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_workflow_pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_pipeline.id", ondelete="CASCADE"), index=True
    )
    to_workflow_pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_pipeline.id", ondelete="CASCADE"), index=True
    )


class WorkflowRun(TimestampedMixin, Base):
    """One execution of a workflow: one pipeline run per workflow pipeline."""

    __tablename__ = "workflow_run"

    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflow.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    callback_url: Mapped[str | None] = mapped_column(String(2000), default=None)

    states: Mapped[list[WorkflowRunState]] = relationship(
        lazy="raise", order_by="WorkflowRunState.id", cascade="all, delete-orphan"
    )
    workflow_pipeline_runs: Mapped[list[WorkflowPipelineRun]] = relationship(
        lazy="raise", order_by="WorkflowPipelineRun.id", cascade="all, delete-orphan"
    )


class WorkflowRunState(Base):
    __tablename__ = "workflow_run_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_run_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_run.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkflowPipelineRun(TimestampedMixin, Base):
    """The pipeline run that executes one workflow pipeline within a workflow run."""

    __tablename__ = "workflow_pipeline_run"

    workflow_run_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_run.id", ondelete="CASCADE"), index=True
    )
    workflow_pipeline_id: Mapped[int] = mapped_column(ForeignKey("workflow_pipeline.id"))
    pipeline_run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_run.id"), unique=True)

    pipeline_run: Mapped[PipelineRun] = relationship(lazy="raise")
    workflow_pipeline: Mapped[WorkflowPipeline] = relationship(lazy="raise")
