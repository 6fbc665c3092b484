"""v1 pipelines endpoints. Every success answers 200, creates and deletes included."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from workflow_service.auth.dependencies import ClientApp
from workflow_service.db import SessionDep
from workflow_service.errors import BadRequest, error_responses
from workflow_service.pagination import PAGED_LIST, PageDep
from workflow_service.pipelines import repository, service
from workflow_service.pipelines.schemas import (
    PipelineFileOut,
    PipelineIn,
    PipelineOut,
    PipelineSearch,
)
from workflow_service.runtime import RuntimeDep
from workflow_service.schemas import UuidPath
from workflow_service.uploads import form_files, is_multipart, read_form, upload_of

router = APIRouter(
    prefix="/v1/pipelines", tags=["pipelines"], responses=error_responses(400, 401, 403, 413, 503)
)

PipelineBody = Annotated[PipelineIn, Body()]
PIPELINE_BODY_DOC = (
    "A body without `kind` is a `script` pipeline (the original's rules: `docker_image_url` "
    "and `repository_ssh_url` required and non-empty); native pipelines say "
    '`"kind": "gridlabd"`.'
)


@router.post("", summary="Create a pipeline", description=PIPELINE_BODY_DOC)
async def create_pipeline(
    definition: PipelineBody, session: SessionDep, _: ClientApp
) -> PipelineOut:
    return PipelineOut.model_validate(await service.create_pipeline(session, definition))


@router.get("", summary="List pipelines", responses=PAGED_LIST)
async def list_pipelines(
    session: SessionDep, _: ClientApp, page: PageDep, request: Request, response: Response
) -> list[PipelineOut]:
    rows = page.finish(list(await repository.list_pipelines(session, page)), request, response)
    return [PipelineOut.model_validate(row) for row in rows]


@router.post(
    "/search",
    summary="Find pipelines by uuid",
    description="Unknown and deleted uuids are left out of the answer; order is creation order.",
)
async def search_pipelines(
    search: PipelineSearch, session: SessionDep, _: ClientApp
) -> list[PipelineOut]:
    rows = await repository.search_pipelines(session, search.uuids)
    return [PipelineOut.model_validate(row) for row in rows]


@router.get("/{pipeline_uuid}", summary="Get a pipeline", responses=error_responses(404))
async def get_pipeline(pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp) -> PipelineOut:
    return PipelineOut.model_validate(await service.get_pipeline(session, pipeline_uuid))


@router.put(
    "/{pipeline_uuid}",
    summary="Replace a pipeline's definition",
    description=PIPELINE_BODY_DOC,
    responses=error_responses(404),
)
async def update_pipeline(
    pipeline_uuid: UuidPath, definition: PipelineBody, session: SessionDep, _: ClientApp
) -> PipelineOut:
    return PipelineOut.model_validate(
        await service.update_pipeline(session, pipeline_uuid, definition)
    )


@router.delete(
    "/{pipeline_uuid}",
    summary="Delete a pipeline",
    description="Soft delete: the pipeline disappears from the API, its runs stay. Answers `{}`.",
    responses=error_responses(404),
)
async def delete_pipeline(
    pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> dict[str, str]:
    await service.delete_pipeline(session, pipeline_uuid)
    return {}


FILES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One part per file; its file name is the file's name.",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/{pipeline_uuid}/files",
    summary="Add or replace pipeline files",
    description=(
        "The model and its companions (includes, players, weather), kept with a `gridlabd` "
        "pipeline: every run starts with them in its working directory, then its inputs "
        "(an input wins over a file of the same name). Multipart, one `files` part per file."
    ),
    responses=error_responses(404),
    openapi_extra=FILES_BODY,
)
async def add_pipeline_files(
    pipeline_uuid: UuidPath,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
) -> list[PipelineFileOut]:
    pipeline = await service.get_pipeline(session, pipeline_uuid)
    if not is_multipart(request):
        raise BadRequest("Send files as multipart/form-data", {"content_type": ["multipart"]})
    form = await read_form(request, max_files=runtime.settings.max_inputs_per_run, fields=set())
    try:
        uploads = [upload_of(item) for item in form_files(form)]
        files = await service.add_files(session, runtime, pipeline, uploads)
    finally:
        await form.close()
    return [PipelineFileOut.model_validate(item) for item in files]


@router.get(
    "/{pipeline_uuid}/files",
    summary="List pipeline files",
    responses=error_responses(404),
)
async def list_pipeline_files(
    pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> list[PipelineFileOut]:
    pipeline = await service.get_pipeline(session, pipeline_uuid)
    return [
        PipelineFileOut.model_validate(item)
        for item in await repository.list_files(session, pipeline)
    ]


@router.delete(
    "/{pipeline_uuid}/files/{name}",
    summary="Delete a pipeline file",
    description="Answers `{}`.",
    responses=error_responses(404),
)
async def delete_pipeline_file(
    pipeline_uuid: UuidPath, name: str, session: SessionDep, runtime: RuntimeDep, _: ClientApp
) -> dict[str, str]:
    pipeline = await service.get_pipeline(session, pipeline_uuid)
    await service.delete_file(session, runtime, pipeline, name)
    return {}
