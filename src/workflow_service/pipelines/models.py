from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from workflow_service.db import Base, TimestampedMixin


class PipelineKind(StrEnum):
    GRIDLABD = "gridlabd"
    """Native: the engine runs the pipeline's model in a fresh working directory."""
    SCRIPT = "script"
    """OpenFIDO contract: a repository's script reads OPENFIDO_INPUT, writes OPENFIDO_OUTPUT."""


class Pipeline(TimestampedMixin, Base):
    __tablename__ = "pipeline"

    name: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(16))
    # script kind
    docker_image_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    repository_ssh_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    repository_branch: Mapped[str | None] = mapped_column(String(100), default=None)
    repository_script: Mapped[str | None] = mapped_column(String(4096), default=None)
    # gridlabd kind
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    arguments: Mapped[list[str]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), default=list
    )
    timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    run_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Runs created so far: the next run's ``sequence`` (see runs.repository.next_sequence)."""


class PipelineFile(TimestampedMixin, Base):
    """A model or companion file (include, player, weather) kept with a gridlabd pipeline."""

    __tablename__ = "pipeline_file"
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)

    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
