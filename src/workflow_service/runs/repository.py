"""Queries on runs, with explicit eager loading: no request does N+1 queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer, selectinload

from workflow_service.pagination import Page
from workflow_service.pipelines.models import Pipeline
from workflow_service.runs.models import Artifact, PipelineRun, PipelineRunInput
from workflow_service.schemas import is_hex_uuid

FULL_RUN = (
    selectinload(PipelineRun.states),
    selectinload(PipelineRun.inputs),
    selectinload(PipelineRun.artifacts),
    # A run's JSON never shows its console (up to MAX_CONSOLE_BYTES per stream): loading
    # it made a page of 20 runs with full consoles ~3x slower (bench/api.py).
    defer(PipelineRun.std_out, raiseload=True),
    defer(PipelineRun.std_err, raiseload=True),
)


def _runs_of(pipeline_id: int) -> Select[PipelineRun]:
    return select(PipelineRun).where(
        PipelineRun.pipeline_id == pipeline_id, PipelineRun.is_deleted.is_(False)
    )


async def find_run(
    session: AsyncSession, pipeline_id: int, run_uuid: str, *, full: bool = True
) -> PipelineRun | None:
    """The live run ``run_uuid`` of pipeline ``pipeline_id`` (another pipeline's is not found)."""
    if not is_hex_uuid(run_uuid):
        return None
    query = _runs_of(pipeline_id).where(PipelineRun.uuid == run_uuid)
    if full:
        query = query.options(*FULL_RUN)
    return await session.scalar(query.execution_options(populate_existing=True))


async def list_runs(session: AsyncSession, pipeline: Pipeline, page: Page) -> Sequence[PipelineRun]:
    query = _runs_of(pipeline.id).options(*FULL_RUN).order_by(PipelineRun.id)
    if page.after_id is not None:
        query = query.where(PipelineRun.id > page.after_id)
    return (await session.scalars(query.limit(page.fetch_size()))).all()


async def next_sequence(session: AsyncSession, pipeline_id: int) -> int:
    """Count the run on its pipeline. The row stays locked until the caller commits, so
    concurrent creations on one pipeline get 1, 2, 3… without gaps or retries."""
    counted = await session.scalar(
        update(Pipeline)
        .where(Pipeline.id == pipeline_id)
        .values(run_count=Pipeline.run_count + 1)
        .returning(Pipeline.run_count)
        .execution_options(synchronize_session=False)
    )
    assert counted is not None
    return int(counted)


async def find_artifact(session: AsyncSession, uuid: str) -> Artifact | None:
    """A downloadable artifact: its run and pipeline must not be deleted."""
    if not is_hex_uuid(uuid):
        return None
    query = (
        select(Artifact)
        .join(PipelineRun, Artifact.run_id == PipelineRun.id)
        .join(Pipeline, PipelineRun.pipeline_id == Pipeline.id)
        .where(
            Artifact.uuid == uuid,
            PipelineRun.is_deleted.is_(False),
            Pipeline.is_deleted.is_(False),
        )
    )
    return await session.scalar(query)


async def run_inputs(session: AsyncSession, run_id: int) -> Sequence[PipelineRunInput]:
    query = select(PipelineRunInput).where(PipelineRunInput.run_id == run_id)
    return (await session.scalars(query.order_by(PipelineRunInput.id))).all()


async def find_artifact_named(session: AsyncSession, run_id: int, name: str) -> Artifact | None:
    return await session.scalar(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    )


async def newest_runs(session: AsyncSession, pipeline_id: int, limit: int) -> Sequence[PipelineRun]:
    """The pipeline's newest live runs, newest first, without consoles or relationships."""
    query = (
        _runs_of(pipeline_id)
        .options(defer(PipelineRun.std_out, raiseload=True))
        .options(defer(PipelineRun.std_err, raiseload=True))
        .order_by(PipelineRun.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()
