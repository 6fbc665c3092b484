"""Queries on pipelines. Soft-deleted pipelines are invisible to every one of them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.pagination import Page
from workflow_service.pipelines.models import Pipeline, PipelineFile
from workflow_service.schemas import is_hex_uuid

_live = select(Pipeline).where(Pipeline.is_deleted.is_(False))


async def find_pipeline(session: AsyncSession, uuid: str) -> Pipeline | None:
    if not is_hex_uuid(uuid):
        return None
    return await session.scalar(_live.where(Pipeline.uuid == uuid))


async def list_pipelines(session: AsyncSession, page: Page) -> Sequence[Pipeline]:
    query = _live.order_by(Pipeline.id)
    if page.after_id is not None:
        query = query.where(Pipeline.id > page.after_id)
    return (await session.scalars(query.limit(page.fetch_size()))).all()


async def search_pipelines(session: AsyncSession, uuids: Sequence[str]) -> Sequence[Pipeline]:
    if not uuids:
        return []
    query = _live.where(Pipeline.uuid.in_(set(uuids))).order_by(Pipeline.id)
    return (await session.scalars(query)).all()


async def list_files(session: AsyncSession, pipeline: Pipeline) -> Sequence[PipelineFile]:
    query = (
        select(PipelineFile)
        .where(PipelineFile.pipeline_id == pipeline.id)
        .order_by(PipelineFile.name)
    )
    return (await session.scalars(query)).all()


async def find_file(session: AsyncSession, pipeline: Pipeline, name: str) -> PipelineFile | None:
    return await session.scalar(
        select(PipelineFile).where(
            PipelineFile.pipeline_id == pipeline.id, PipelineFile.name == name
        )
    )
