"""Pipeline rules: create, replace, soft-delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.db import new_uuid
from workflow_service.errors import BadRequest, NotFound
from workflow_service.pipelines import repository
from workflow_service.pipelines.models import Pipeline, PipelineFile, PipelineKind
from workflow_service.pipelines.schemas import GridlabdPipeline, ScriptPipeline
from workflow_service.runtime import Runtime
from workflow_service.storage import StorageError
from workflow_service.uploads import Upload

logger = logging.getLogger(__name__)

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
    """Soft delete: the row stays for the runs that refer to it. A pipeline that a live
    workflow uses cannot be deleted."""
    from workflow_service.workflows.repository import pipeline_in_use

    pipeline = await get_pipeline(session, uuid)
    if await pipeline_in_use(session, pipeline.id):
        raise BadRequest(
            "The pipeline is used by a workflow",
            {"pipeline": ["remove it from its workflows first"]},
        )
    pipeline.is_deleted = True
    await session.commit()


async def add_files(
    session: AsyncSession, runtime: Runtime, pipeline: Pipeline, uploads: Sequence[Upload]
) -> Sequence[PipelineFile]:
    """Add or replace files by name; a replaced file's object is removed after the commit."""
    if pipeline.kind != PipelineKind.GRIDLABD.value:
        raise BadRequest(
            "Only gridlabd pipelines carry files", {"kind": ["script pipelines clone a repository"]}
        )
    names = [upload.name for upload in uploads]
    if not names or len(set(names)) != len(names):
        raise BadRequest("Send one or more files with distinct names", {"files": [str(names)]})
    existing = {item.name: item for item in await repository.list_files(session, pipeline)}
    stored: list[str] = []
    replaced: list[str] = []
    try:
        for upload in uploads:
            key = f"{pipeline.uuid}/files/{new_uuid()}-{upload.name}"
            stored.append(key)
            saved = await runtime.storage.put_stream(
                key, upload.chunks, upload.content_type, runtime.settings.max_content_length
            )
            current = existing.get(upload.name)
            if current is None:
                current = PipelineFile(pipeline_id=pipeline.id, name=upload.name)
                session.add(current)
            else:
                replaced.append(current.key)
            current.key, current.size, current.sha256 = key, saved.size, saved.sha256
            current.content_type = upload.content_type
        await session.commit()
    except BaseException:
        await session.rollback()
        await remove_objects(runtime, stored)
        raise
    await remove_objects(runtime, replaced)
    return await repository.list_files(session, pipeline)


async def delete_file(
    session: AsyncSession, runtime: Runtime, pipeline: Pipeline, name: str
) -> None:
    found = await repository.find_file(session, pipeline, name)
    if found is None:
        raise NotFound("Pipeline file not found")
    await session.delete(found)
    await session.commit()
    await remove_objects(runtime, [found.key])


async def remove_objects(runtime: Runtime, keys: Sequence[str]) -> None:
    """Best effort: an object left behind costs space, never correctness."""
    for key in keys:
        try:
            await runtime.storage.delete(key)
        except StorageError:
            logger.warning("could not remove object %s", key)
