"""Pipeline rules: create, replace, soft-delete."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.errors import NotFound
from workflow_service.pipelines import repository
from workflow_service.pipelines.models import Pipeline, PipelineKind
from workflow_service.pipelines.schemas import GridlabdPipeline, ScriptPipeline

PipelineDefinition = ScriptPipeline | GridlabdPipeline


async def get_pipeline(session: AsyncSession, uuid: str) -> Pipeline:
    pipeline = await repository.find_pipeline(session, uuid)
    if pipeline is None:
        raise NotFound("Pipeline not found")
    return pipeline


def _apply(pipeline: Pipeline, definition: PipelineDefinition) -> None:
    """Write every field of ``definition``; fields of the other kind are cleared."""
    pipeline.name = definition.name
    pipeline.description = definition.description or ""
    if isinstance(definition, ScriptPipeline):
        pipeline.kind = PipelineKind.SCRIPT.value
        pipeline.docker_image_url = definition.docker_image_url
        pipeline.repository_ssh_url = definition.repository_ssh_url
        pipeline.repository_branch = definition.repository_branch
        pipeline.repository_script = definition.repository_script
        pipeline.model = None
        pipeline.arguments = []
        pipeline.timeout_seconds = None
    else:
        pipeline.kind = PipelineKind.GRIDLABD.value
        pipeline.docker_image_url = None
        pipeline.repository_ssh_url = None
        pipeline.repository_branch = None
        pipeline.repository_script = None
        pipeline.model = definition.model
        pipeline.arguments = list(definition.arguments)
        pipeline.timeout_seconds = definition.timeout_seconds


async def create_pipeline(session: AsyncSession, definition: PipelineDefinition) -> Pipeline:
    pipeline = Pipeline()
    _apply(pipeline, definition)
    session.add(pipeline)
    await session.commit()
    return pipeline


async def update_pipeline(
    session: AsyncSession, uuid: str, definition: PipelineDefinition
) -> Pipeline:
    """Replace the pipeline's definition (PUT semantics: omitted fields take defaults)."""
    pipeline = await get_pipeline(session, uuid)
    _apply(pipeline, definition)
    await session.commit()
    return pipeline


async def delete_pipeline(session: AsyncSession, uuid: str) -> None:
    """Soft delete: the row stays for the runs that refer to it."""
    pipeline = await get_pipeline(session, uuid)
    pipeline.is_deleted = True
    await session.commit()
