from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow_service.db import Base, TimestampedMixin, UTCDateTime, utcnow
from workflow_service.pipelines.models import Pipeline


class PipelineRun(TimestampedMixin, Base):
    """One execution of a pipeline. ``state`` mirrors the last entry of ``states``."""

    __tablename__ = "pipeline_run"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "sequence"),
        Index("ix_pipeline_run_state_heartbeat", "state", "heartbeat_at"),
    )

    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    callback_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    defines: Mapped[dict[str, str]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), default=dict
    )
    progress: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    failure_reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_claim: Mapped[str | None] = mapped_column(String(32), default=None)
    std_out: Mapped[str] = mapped_column(Text, default="")
    std_err: Mapped[str] = mapped_column(Text, default="")
    std_out_size: Mapped[int] = mapped_column(BigInteger, default=0)
    std_err_size: Mapped[int] = mapped_column(BigInteger, default=0)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    pipeline: Mapped[Pipeline] = relationship(lazy="raise")
    states: Mapped[list[PipelineRunState]] = relationship(
        lazy="raise", order_by="PipelineRunState.id", cascade="all, delete-orphan"
    )
    inputs: Mapped[list[PipelineRunInput]] = relationship(
        lazy="raise", order_by="PipelineRunInput.id", cascade="all, delete-orphan"
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        lazy="raise", order_by="Artifact.id", cascade="all, delete-orphan", back_populates="run"
    )


class PipelineRunState(Base):
    """One entry of a run's state history."""

    __tablename__ = "pipeline_run_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_run.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PipelineRunInput(Base):
    """A file a run starts with: fetched from ``url``, or uploaded and kept under ``key``."""

    __tablename__ = "pipeline_run_input"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_run.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(1024))
    url: Mapped[str | None] = mapped_column(String(2000), default=None)
    key: Mapped[str | None] = mapped_column(String(1024), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)


class Artifact(TimestampedMixin, Base):
    """A file a run produced, kept in object storage under ``key``."""

    __tablename__ = "artifact"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_run.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(1024))
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))

    run: Mapped[PipelineRun] = relationship(lazy="raise", back_populates="artifacts")
