"""v1 run endpoints (client and worker), artifact downloads and the live console."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from workflow_service.auth.dependencies import ClientApp, WorkerApp
from workflow_service.db import Database, SessionDep
from workflow_service.errors import NotFound, error_responses
from workflow_service.pagination import PAGED_LIST, PageDep
from workflow_service.pipelines.service import get_pipeline
from workflow_service.runs import console, repository, service
from workflow_service.runs.schemas import (
    ArtifactOut,
    ArtifactRegistration,
    ConsoleAppend,
    ConsoleOut,
    ConsoleReplace,
    Job,
    RunClaim,
    RunCreate,
    RunOut,
    StateUpdate,
)
from workflow_service.runs.states import RunState
from workflow_service.runtime import Runtime, RuntimeDep
from workflow_service.schemas import UuidPath
from workflow_service.storage import ObjectNotFound, content_disposition
from workflow_service.uploads import (
    Upload,
    checked_file_name,
    form_files,
    form_json,
    is_multipart,
    parse_data,
    parse_json,
    read_form,
    upload_of,
)

router = APIRouter(
    prefix="/v1/pipelines/{pipeline_uuid}/runs",
    tags=["runs"],
    responses=error_responses(400, 401, 403, 404, 413, 503),
)
artifacts_router = APIRouter(prefix="/v1/artifacts", tags=["runs"])

CONSOLE_POLL_SECONDS = 0.25

CREATE_RUN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RunCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": (
                                "One part per input file; its file name is the input name."
                            ),
                        },
                        "callback_url": {"type": "string"},
                        "inputs": {
                            "type": "string",
                            "description": 'JSON list of URL inputs, `[{"name", "url"}]`.',
                        },
                        "defines": {
                            "type": "string",
                            "description": 'JSON object of engine defines, `{"NAME": "value"}`.',
                        },
                    },
                }
            },
        },
    }
}


def _base_url(request: Request) -> str:
    return str(request.base_url)


@contextlib.asynccontextmanager
async def run_request(request: Request, runtime: Runtime) -> AsyncIterator[service.RunRequest]:
    """The run body: JSON, or multipart with the files (whose spooled copies are closed
    when the block ends)."""
    if not is_multipart(request):
        body = parse_json(await request.body(), RunCreate)
        yield service.RunRequest(body.inputs, [], body.callback_url, body.defines)
        return
    form = await read_form(
        request,
        max_files=runtime.settings.max_inputs_per_run,
        fields={"callback_url", "inputs", "defines"},
    )
    try:
        fields = parse_data(
            {
                "inputs": form_json(form, "inputs", []),
                "defines": form_json(form, "defines", {}),
                "callback_url": form.get("callback_url") or None,
            },
            RunCreate,
        )
        uploads = [upload_of(item) for item in form_files(form)]
        yield service.RunRequest(fields.inputs, uploads, fields.callback_url, fields.defines)
    finally:
        await form.close()


@router.post(
    "",
    summary="Start a run",
    description=(
        "JSON (the original's body: URL inputs, `callback_url`, and `defines` for the engine) "
        "or multipart/form-data carrying the input files themselves, stored before the run "
        "is enqueued. An empty body starts a run with no inputs (a pipeline with files)."
    ),
    openapi_extra=CREATE_RUN_BODY,
)
async def create_run(
    pipeline_uuid: UuidPath,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
) -> RunOut:
    pipeline = await get_pipeline(session, pipeline_uuid)
    async with run_request(request, runtime) as body:
        run = await service.create_run(session, runtime, pipeline, body)
    return await service.present(runtime, run, _base_url(request))


@router.get("", summary="List a pipeline's runs", responses=PAGED_LIST)
async def list_runs(
    pipeline_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
    page: PageDep,
    request: Request,
    response: Response,
) -> list[RunOut]:
    pipeline = await get_pipeline(session, pipeline_uuid)
    rows = page.finish(list(await repository.list_runs(session, pipeline, page)), request, response)
    return [await service.present(runtime, run, _base_url(request)) for run in rows]


@router.get("/{run_uuid}", summary="Get a run")
async def get_run(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: ClientApp,
) -> RunOut:
    run = (await service.get_run(session, pipeline_uuid, run_uuid))[1]
    return await service.present(runtime, run, _base_url(request))


@router.delete(
    "/{run_uuid}",
    summary="Delete a run",
    description="Soft delete; a run that has not ended is cancelled first. Answers `{}`.",
)
async def delete_run(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
) -> dict[str, str]:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid)
    await service.delete_run(session, runtime, pipeline, run)
    return {}


@router.post(
    "/{run_uuid}/cancel",
    summary="Cancel a run",
    description=(
        "QUEUED and NOT_STARTED runs become CANCELLED at once and never start; a RUNNING "
        "run's engine is killed (its whole process group) and its console kept. Cancelling "
        "a cancelled run again is a no-op; a run that completed or failed answers 400."
    ),
)
async def cancel_run(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: ClientApp,
) -> RunOut:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    await service.cancel_run(session, runtime, pipeline, run)
    run = (await service.get_run(session, pipeline_uuid, run_uuid))[1]
    return await service.present(runtime, run, _base_url(request))


@router.get("/{run_uuid}/console", summary="Get a run's console")
async def get_console(
    pipeline_uuid: UuidPath, run_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> ConsoleOut:
    run = (await service.get_run(session, pipeline_uuid, run_uuid, full=False))[1]
    return service.console_of(run)


@router.put(
    "/{run_uuid}/console",
    summary="Replace a run's console (worker)",
    description="The original's whole-console upload. Answers `{}`.",
)
async def replace_console(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    body: ConsoleReplace,
    session: SessionDep,
    runtime: RuntimeDep,
    _: WorkerApp,
) -> dict[str, str]:
    run = (await service.get_run(session, pipeline_uuid, run_uuid, full=False))[1]
    await service.replace_console(
        session, run, body.std_out, body.std_err, runtime.settings.max_console_bytes
    )
    return {}


@router.post(
    "/{run_uuid}/console",
    summary="Report console chunks and progress (worker)",
    description=(
        "Appends console chunks, each naming its offset in its stream (a chunk sent twice "
        "is added once), records progress, and counts as the run's heartbeat (an empty "
        "body is a pure heartbeat). Answers the console's sizes."
    ),
)
async def append_console(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    body: ConsoleAppend,
    session: SessionDep,
    runtime: RuntimeDep,
    _: WorkerApp,
) -> ConsoleOut:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    out = await service.report(session, pipeline, run, body, runtime.settings.max_console_bytes)
    return out.model_copy(update={"std_out": "", "std_err": ""})


@router.get(
    "/{run_uuid}/console/stream",
    summary="Follow a run's console live (server-sent events)",
    description=(
        "Events: `std_out` and `std_err` (new text), `progress` (0-100), `state` (each new "
        "state) and a last `end` once the run has ended and its console is drained. Each "
        "event's id is `<std_out size>:<std_err size>`: reconnecting with `Last-Event-ID` "
        "resumes there."
    ),
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_console(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: ClientApp,
) -> EventSourceResponse:
    await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    offsets = _resume_offsets(request.headers.get("last-event-id"))
    database: Database = request.app.state.database
    cap = runtime.settings.max_console_bytes
    return EventSourceResponse(
        _console_events(database, pipeline_uuid, run_uuid, offsets, cap), ping=15
    )


def _resume_offsets(last_event_id: str | None) -> tuple[int, int]:
    out, _, err = (last_event_id or "").partition(":")
    if out.isdigit() and err.isdigit():
        return int(out), int(err)
    return 0, 0


async def _console_events(
    database: Database, pipeline_uuid: str, run_uuid: str, offsets: tuple[int, int], cap: int
) -> AsyncIterator[ServerSentEvent]:
    """Poll the run (any API replica can serve this) and send what is new."""
    out_offset, err_offset = offsets
    state: str | None = None
    progress: int | None = None
    while True:
        async with database.sessions() as session:
            run = (await service.get_run(session, pipeline_uuid, run_uuid, full=False))[1]
        event_id = f"{run.std_out_size}:{run.std_err_size}"
        for name, stream, offset in (
            ("std_out", console.Stream(run.std_out, run.std_out_size), out_offset),
            ("std_err", console.Stream(run.std_err, run.std_err_size), err_offset),
        ):
            text = console.since(stream, offset, cap)
            if text:
                yield ServerSentEvent(data=text, event=name, id=event_id)
        out_offset, err_offset = run.std_out_size, run.std_err_size
        if run.progress != progress and run.progress is not None:
            progress = run.progress
            yield ServerSentEvent(data=str(progress), event="progress", id=event_id)
        if run.state != state:
            state = run.state
            yield ServerSentEvent(data=state, event="state", id=event_id)
        if RunState(run.state).is_final:
            yield ServerSentEvent(data=run.state, event="end", id=event_id)
            return
        await asyncio.sleep(CONSOLE_POLL_SECONDS)


@router.put(
    "/{run_uuid}/state",
    summary="Set a run's state (worker)",
    description=(
        "The state machine decides: QUEUED → NOT_STARTED → RUNNING → COMPLETED | FAILED | "
        "CANCELLED, and QUEUED or NOT_STARTED → CANCELLED. Setting the state the run is "
        "already in answers 200 and changes nothing (workers retry); any other transition "
        "is a 400 naming the current state. Answers `{}`."
    ),
)
async def set_state(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    body: StateUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    _: WorkerApp,
) -> dict[str, str]:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    await service.change_state(session, runtime, pipeline, run, body)
    return {}


@router.post(
    "/{run_uuid}/claim",
    summary="Take a run and get what executing it needs (worker)",
    description=(
        "NOT_STARTED → RUNNING under the worker's claim, answering the job: the pipeline's "
        "definition and files, the run's inputs and defines, where artifacts go. Claiming "
        "again with the same claim answers the job again (a retried request); any other "
        "state, or another claim, is a 400 and the worker leaves the run alone."
    ),
)
async def claim_run(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    body: RunClaim,
    session: SessionDep,
    runtime: RuntimeDep,
    _: WorkerApp,
) -> Job:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    return await service.claim_run(session, runtime, pipeline, run, body.claim)


@router.post(
    "/{run_uuid}/artifacts",
    summary="Upload an artifact (worker)",
    description=(
        "The original's upload: the file is the request body, its name the `name` query "
        "parameter (a relative path is kept, e.g. `plots/v.png`). The API streams it to "
        "storage. Uploading a name again replaces it. Answers `{}`."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_artifact(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    name: Annotated[str, Query(max_length=1024, description="The artifact's name.")],
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _: WorkerApp,
) -> dict[str, str]:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    upload = Upload(
        name=checked_file_name(name, "name", relative=True),
        chunks=request.stream(),
        content_type=request.headers.get("content-type", "application/octet-stream")[:255],
    )
    await service.upload_artifact(session, runtime, pipeline, run, upload)
    return {}


@router.post(
    "/{run_uuid}/artifacts/register",
    summary="Register an artifact the worker uploaded to storage (worker)",
    description=(
        "The object must already exist under the run's key prefix with the given size. "
        "Registering a name again replaces it."
    ),
)
async def register_artifact(
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    body: ArtifactRegistration,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    _: WorkerApp,
) -> ArtifactOut:
    pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid, full=False)
    artifact = await service.register_artifact(session, runtime, pipeline, run, body)
    return ArtifactOut(
        uuid=artifact.uuid,
        name=artifact.name,
        url=await service.artifact_url(runtime, artifact, _base_url(request)),
        size=artifact.size,
        sha256=artifact.sha256,
        content_type=artifact.content_type,
    )


@artifacts_router.get(
    "/{artifact_uuid}",
    summary="Download an artifact",
    description=(
        "S3 storage: a redirect (307) to a presigned URL. Local storage: the file itself. "
        "Both with `Content-Disposition: attachment` naming the file."
    ),
    response_class=Response,
    responses={
        200: {
            # The artifact's own content type (text/csv, image/png...), as it was uploaded.
            # application/octet-stream is named too: generators (openapi-python-client)
            # skip a response whose only media type is the */* range.
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "*/*": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The file, with the content type it was uploaded with",
        },
        307: {"description": "Redirect to a presigned URL"},
        **error_responses(401, 403, 404, 503),
    },
)
async def download_artifact(
    artifact_uuid: UuidPath, session: SessionDep, runtime: RuntimeDep, _: ClientApp
) -> Response:
    artifact = await repository.find_artifact(session, artifact_uuid)
    if artifact is None:
        raise NotFound("Artifact not found")
    filename = artifact.name.rsplit("/", 1)[-1]
    presigned = await runtime.storage.presigned_url(artifact.key, filename)
    if presigned is not None:
        return RedirectResponse(presigned, status_code=307)
    chunks = runtime.storage.iter_chunks(artifact.key)
    try:
        first = await anext(chunks, b"")
    except ObjectNotFound:
        raise NotFound("Artifact content is missing from storage") from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        media_type=artifact.content_type,
        headers={
            "Content-Disposition": content_disposition(filename),
            "Content-Length": str(artifact.size),
        },
    )
