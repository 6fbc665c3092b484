"""Queries on workflows, with explicit eager loading (no N+1 in any request)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from workflow_service.pagination import Page
from workflow_service.runs.models import PipelineRun
from workflow_service.runs.repository import FULL_RUN
from workflow_service.schemas import is_hex_uuid
from workflow_service.workflows.models import (
    Workflow,
    WorkflowPipeline,
    WorkflowPipelineDependency,
    WorkflowPipelineRun,
    WorkflowRun,
)

_live = select(Workflow).where(Workflow.is_deleted.is_(False))

FULL_WORKFLOW_RUN = (
    selectinload(WorkflowRun.states),
    selectinload(WorkflowRun.workflow_pipeline_runs)
    .selectinload(WorkflowPipelineRun.pipeline_run)
    .options(*FULL_RUN, selectinload(PipelineRun.pipeline)),
    selectinload(WorkflowRun.workflow_pipeline_runs).selectinload(
        WorkflowPipelineRun.workflow_pipeline
    ),
)


async def find_workflow(session: AsyncSession, uuid: str) -> Workflow | None:
    if not is_hex_uuid(uuid):
        return None
    return await session.scalar(_live.where(Workflow.uuid == uuid))


async def list_workflows(session: AsyncSession, page: Page) -> Sequence[Workflow]:
    query = _live.order_by(Workflow.id)
    if page.after_id is not None:
        query = query.where(Workflow.id > page.after_id)
    return (await session.scalars(query.limit(page.fetch_size()))).all()


async def search_workflows(session: AsyncSession, uuids: Sequence[str]) -> Sequence[Workflow]:
    if not uuids:
        return []
    query = _live.where(Workflow.uuid.in_(set(uuids))).order_by(Workflow.id)
    return (await session.scalars(query)).all()


async def workflow_pipelines(session: AsyncSession, workflow_id: int) -> list[WorkflowPipeline]:
    """The live workflow pipelines of a workflow, with their pipelines, in creation order."""
    query = (
        select(WorkflowPipeline)
        .where(WorkflowPipeline.workflow_id == workflow_id, WorkflowPipeline.is_deleted.is_(False))
        .options(selectinload(WorkflowPipeline.pipeline))
        .order_by(WorkflowPipeline.id)
    )
    return list((await session.scalars(query)).all())


async def edges(session: AsyncSession, workflow_id: int) -> list[tuple[int, int]]:
    """(from, to) workflow pipeline ids of a workflow's edges, in creation order."""
    query = (
        select(
            WorkflowPipelineDependency.from_workflow_pipeline_id,
            WorkflowPipelineDependency.to_workflow_pipeline_id,
        )
        .join(
            WorkflowPipeline,
            WorkflowPipeline.id == WorkflowPipelineDependency.from_workflow_pipeline_id,
        )
        .where(WorkflowPipeline.workflow_id == workflow_id)
        .order_by(WorkflowPipelineDependency.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def find_workflow_pipeline_anywhere(
    session: AsyncSession, uuid: str
) -> WorkflowPipeline | None:
    """A live workflow pipeline of any workflow (to tell "unknown" from "another workflow's")."""
    if not is_hex_uuid(uuid):
        return None
    return await session.scalar(
        select(WorkflowPipeline).where(
            WorkflowPipeline.uuid == uuid, WorkflowPipeline.is_deleted.is_(False)
        )
    )


async def pipeline_in_use(session: AsyncSession, pipeline_id: int) -> bool:
    """Whether a live workflow pipeline of a live workflow refers to the pipeline."""
    query = select(
        exists().where(
            WorkflowPipeline.pipeline_id == pipeline_id,
            WorkflowPipeline.is_deleted.is_(False),
            WorkflowPipeline.workflow_id == Workflow.id,
            Workflow.is_deleted.is_(False),
        )
    )
    return bool(await session.scalar(query))


async def find_workflow_run(
    session: AsyncSession, workflow_id: int, uuid: str
) -> WorkflowRun | None:
    if not is_hex_uuid(uuid):
        return None
    query = (
        select(WorkflowRun)
        .where(WorkflowRun.workflow_id == workflow_id, WorkflowRun.uuid == uuid)
        .options(*FULL_WORKFLOW_RUN)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(query)


async def load_workflow_run(session: AsyncSession, workflow_run_id: int) -> WorkflowRun | None:
    query = (
        select(WorkflowRun)
        .where(WorkflowRun.id == workflow_run_id)
        .options(*FULL_WORKFLOW_RUN)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(query)


def _full_runs_of(workflow_id: int) -> Select[WorkflowRun]:
    """A workflow's runs, each with its pipeline runs loaded."""
    return (
        select(WorkflowRun)
        .where(WorkflowRun.workflow_id == workflow_id)
        .options(*FULL_WORKFLOW_RUN)
    )


async def list_workflow_runs(
    session: AsyncSession, workflow_id: int, page: Page
) -> Sequence[WorkflowRun]:
    query = _full_runs_of(workflow_id).order_by(WorkflowRun.id)
    if page.after_id is not None:
        query = query.where(WorkflowRun.id > page.after_id)
    return (await session.scalars(query.limit(page.fetch_size()))).all()


async def workflow_run_of(session: AsyncSession, pipeline_run_id: int) -> int | None:
    """The workflow run a pipeline run belongs to, if any."""
    return await session.scalar(
        select(WorkflowPipelineRun.workflow_run_id).where(
            WorkflowPipelineRun.pipeline_run_id == pipeline_run_id
        )
    )


async def unfinished_workflow_runs(session: AsyncSession, limit: int) -> list[int]:
    query = (
        select(WorkflowRun.id)
        .where(WorkflowRun.state.in_(["NOT_STARTED", "RUNNING"]))
        .order_by(WorkflowRun.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def newest_workflow_runs(
    session: AsyncSession, workflow_id: int, limit: int
) -> Sequence[WorkflowRun]:
    """The workflow's newest runs, newest first, with their pipeline runs."""
    query = _full_runs_of(workflow_id).order_by(WorkflowRun.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
