"""v1 workflow endpoints: workflows, their pipelines (the DAG), and workflow runs."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from workflow_service.auth.dependencies import ClientApp
from workflow_service.db import SessionDep
from workflow_service.errors import error_responses
from workflow_service.pagination import PAGED_LIST, PageDep
from workflow_service.runs import service as runs
from workflow_service.runs.router import CREATE_RUN_BODY, run_request
from workflow_service.runs.schemas import StateOut
from workflow_service.runs.states import RunState
from workflow_service.runtime import Runtime, RuntimeDep
from workflow_service.schemas import UuidPath
from workflow_service.workflows import repository, service
from workflow_service.workflows.models import WorkflowRun
from workflow_service.workflows.schemas import (
    WorkflowIn,
    WorkflowOut,
    WorkflowPipelineIn,
    WorkflowPipelineOut,
    WorkflowPipelineRunOut,
    WorkflowRunOut,
    WorkflowSearch,
)

router = APIRouter(
    prefix="/v1/workflows", tags=["workflows"], responses=error_responses(400, 401, 403, 413, 503)
)
NOT_FOUND = error_responses(404)


async def present_run(runtime: Runtime, workflow_run: WorkflowRun, base_url: str) -> WorkflowRunOut:
    return WorkflowRunOut(
        uuid=workflow_run.uuid,
        state=RunState(workflow_run.state),
        states=[
            StateOut(state=RunState(item.state), created_at=item.created_at)
            for item in workflow_run.states
        ],
        workflow_pipeline_runs=[
            WorkflowPipelineRunOut(
                uuid=member.uuid,
                workflow_pipeline_uuid=member.workflow_pipeline.uuid,
                pipeline_uuid=member.pipeline_run.pipeline.uuid,
                pipeline_run=await runs.present(runtime, member.pipeline_run, base_url),
            )
            for member in workflow_run.workflow_pipeline_runs
        ],
        callback_url=workflow_run.callback_url,
        created_at=workflow_run.created_at,
        updated_at=workflow_run.updated_at,
    )


@router.post("", summary="Create a workflow")
async def create_workflow(body: WorkflowIn, session: SessionDep, _: ClientApp) -> WorkflowOut:
    return WorkflowOut.model_validate(await service.create_workflow(session, body))


@router.get("", summary="List workflows", responses=PAGED_LIST)
async def list_workflows(
    session: SessionDep, _: ClientApp, page: PageDep, request: Request, response: Response
) -> list[WorkflowOut]:
    rows = page.finish(list(await repository.list_workflows(session, page)), request, response)
    return [WorkflowOut.model_validate(row) for row in rows]


@router.post(
    "/search",
    summary="Find workflows by uuid",
    description="Unknown and deleted uuids are left out; order is creation order.",
)
async def search_workflows(
    body: WorkflowSearch, session: SessionDep, _: ClientApp
) -> list[WorkflowOut]:
    rows = await repository.search_workflows(session, body.uuids)
    return [WorkflowOut.model_validate(row) for row in rows]


@router.get("/{workflow_uuid}", summary="Get a workflow", responses=NOT_FOUND)
async def get_workflow(workflow_uuid: UuidPath, session: SessionDep, _: ClientApp) -> WorkflowOut:
    return WorkflowOut.model_validate(await service.get_workflow(session, workflow_uuid))


@router.put("/{workflow_uuid}", summary="Update a workflow", responses=NOT_FOUND)
async def update_workflow(
    workflow_uuid: UuidPath, body: WorkflowIn, session: SessionDep, _: ClientApp
) -> WorkflowOut:
    return WorkflowOut.model_validate(await service.update_workflow(session, workflow_uuid, body))


@router.delete(
    "/{workflow_uuid}",
    summary="Delete a workflow",
    description="Soft delete; its runs stay. Answers `{}`.",
    responses=NOT_FOUND,
)
async def delete_workflow(
    workflow_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> dict[str, str]:
    await service.delete_workflow(session, workflow_uuid)
    return {}


@router.post(
    "/{workflow_uuid}/pipelines",
    summary="Add a pipeline to a workflow",
    description=(
        "With its edges: `source_workflow_pipelines` feed it, it feeds "
        "`destination_workflow_pipelines`. An edge that would close a cycle (a self-loop "
        "too), or that names a workflow pipeline of another workflow, is a 400 naming it."
    ),
    responses=NOT_FOUND,
)
async def create_workflow_pipeline(
    workflow_uuid: UuidPath, body: WorkflowPipelineIn, session: SessionDep, _: ClientApp
) -> WorkflowPipelineOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    node = await service.add_node(session, workflow, body)
    return await service.present_node(session, workflow, node)


@router.get(
    "/{workflow_uuid}/pipelines", summary="List a workflow's pipelines", responses=NOT_FOUND
)
async def list_workflow_pipelines(
    workflow_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> list[WorkflowPipelineOut]:
    workflow = await service.get_workflow(session, workflow_uuid)
    return await service.present_nodes(session, workflow)


@router.get(
    "/{workflow_uuid}/pipelines/{workflow_pipeline_uuid}",
    summary="Get a workflow pipeline",
    responses=NOT_FOUND,
)
async def get_workflow_pipeline(
    workflow_uuid: UuidPath, workflow_pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> WorkflowPipelineOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    node = await service.find_node(session, workflow, workflow_pipeline_uuid)
    return await service.present_node(session, workflow, node)


@router.put(
    "/{workflow_uuid}/pipelines/{workflow_pipeline_uuid}",
    summary="Replace a workflow pipeline's pipeline and edges",
    description="Its sources and destinations become exactly the ones given.",
    responses=NOT_FOUND,
)
async def update_workflow_pipeline(
    workflow_uuid: UuidPath,
    workflow_pipeline_uuid: UuidPath,
    body: WorkflowPipelineIn,
    session: SessionDep,
    _: ClientApp,
) -> WorkflowPipelineOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    node = await service.replace_node(session, workflow, workflow_pipeline_uuid, body)
    return await service.present_node(session, workflow, node)


@router.delete(
    "/{workflow_uuid}/pipelines/{workflow_pipeline_uuid}",
    summary="Remove a pipeline from a workflow",
    description="Its edges go with it. Answers `{}`.",
    responses=NOT_FOUND,
)
async def delete_workflow_pipeline(
    workflow_uuid: UuidPath, workflow_pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> dict[str, str]:
    workflow = await service.get_workflow(session, workflow_uuid)
    await service.delete_node(session, workflow, workflow_pipeline_uuid)
    return {}


@router.post(
    "/{workflow_uuid}/runs",
    summary="Run a workflow",
    description=(
        "The same body as a pipeline run (JSON URL inputs or multipart files, `callback_url`, "
        "`defines`). One pipeline run per workflow pipeline: roots start NOT_STARTED with "
        "the inputs, the others wait QUEUED until all their upstream runs COMPLETED, then "
        "start with those runs' artifacts as inputs. A workflow without pipelines is a 400."
    ),
    responses=NOT_FOUND,
    openapi_extra=CREATE_RUN_BODY,
)
async def create_workflow_run(
    workflow_uuid: UuidPath,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
) -> WorkflowRunOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    async with run_request(request, runtime) as body:
        workflow_run = await service.create_workflow_run(session, runtime, workflow, body)
    return await present_run(runtime, workflow_run, str(request.base_url))


@router.get(
    "/{workflow_uuid}/runs",
    summary="List a workflow's runs",
    responses={**PAGED_LIST, **NOT_FOUND},
)
async def list_workflow_runs(
    workflow_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
    page: PageDep,
    request: Request,
    response: Response,
) -> list[WorkflowRunOut]:
    workflow = await service.get_workflow(session, workflow_uuid)
    rows = page.finish(
        list(await repository.list_workflow_runs(session, workflow.id, page)), request, response
    )
    return [await present_run(runtime, row, str(request.base_url)) for row in rows]


@router.get(
    "/{workflow_uuid}/runs/{workflow_run_uuid}", summary="Get a workflow run", responses=NOT_FOUND
)
async def get_workflow_run(
    workflow_uuid: UuidPath,
    workflow_run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: ClientApp,
) -> WorkflowRunOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    workflow_run = await service.get_workflow_run(session, workflow, workflow_run_uuid)
    return await present_run(runtime, workflow_run, str(request.base_url))


@router.post(
    "/{workflow_uuid}/runs/{workflow_run_uuid}/cancel",
    summary="Cancel a workflow run",
    description=(
        "Every unfinished pipeline run becomes CANCELLED (running ones are killed) and the "
        "workflow run CANCELLED. Again on a cancelled one: no-op; on an ended one: 400."
    ),
    responses=NOT_FOUND,
)
async def cancel_workflow_run(
    workflow_uuid: UuidPath,
    workflow_run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: ClientApp,
) -> WorkflowRunOut:
    workflow = await service.get_workflow(session, workflow_uuid)
    workflow_run = await service.get_workflow_run(session, workflow, workflow_run_uuid)
    await service.cancel_workflow_run(session, runtime, workflow_run)
    # Read again by uuid: a lost compare-and-set rolled back and expired the objects.
    workflow = await service.get_workflow(session, workflow_uuid)
    workflow_run = await service.get_workflow_run(session, workflow, workflow_run_uuid)
    return await present_run(runtime, workflow_run, str(request.base_url))
