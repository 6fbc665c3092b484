"""Run rules: creation, state changes, console, artifacts, cancel.

State changes are compare-and-set updates (``WHERE state = <the state we
decided from>``), so a worker's report and a client's cancel racing each
other never both win, on PostgreSQL and SQLite alike. Callbacks go out after
the commit, through the dispatcher, never inside the request that caused them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.db import new_uuid, utcnow
from workflow_service.errors import BadRequest, NotFound
from workflow_service.metrics import observe_run_change
from workflow_service.pipelines.models import Pipeline, PipelineFile
from workflow_service.pipelines.repository import list_files
from workflow_service.pipelines.service import get_pipeline, remove_objects
from workflow_service.queue import QueueUnavailable
from workflow_service.runs import console, repository
from workflow_service.runs.callbacks import Callback
from workflow_service.runs.models import Artifact, PipelineRun, PipelineRunInput, PipelineRunState
from workflow_service.runs.schemas import (
    ArtifactOut,
    ArtifactRegistration,
    ConsoleAppend,
    ConsoleOut,
    InputOut,
    Job,
    JobFile,
    JobInput,
    RunOut,
    StateOut,
    StateUpdate,
    UrlInput,
)
from workflow_service.runs.states import RunState, can_cancel, claim_refusal, decide_transition
from workflow_service.runtime import Runtime
from workflow_service.storage import ObjectTooLarge, StorageError
from workflow_service.uploads import Upload

logger = logging.getLogger(__name__)

CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class RunRequest:
    url_inputs: Sequence[UrlInput]
    uploads: Sequence[Upload]
    callback_url: str | None
    defines: dict[str, str]


async def get_run(
    session: AsyncSession, pipeline_uuid: str, run_uuid: str, *, full: bool = True
) -> tuple[Pipeline, PipelineRun]:
    pipeline = await get_pipeline(session, pipeline_uuid)
    run = await repository.find_run(session, pipeline.id, run_uuid, full=full)
    if run is None:
        raise NotFound("Pipeline run not found")
    return pipeline, run


def artifact_prefix(pipeline: Pipeline, run: PipelineRun) -> str:
    return f"{pipeline.uuid}/{run.uuid}/"


def _record(run: PipelineRun, state: RunState) -> None:
    run.state = state.value
    run.states.append(PipelineRunState(state=state.value, created_at=utcnow()))


def check_inputs(request: RunRequest, limit: int) -> None:
    names = [item.name for item in request.url_inputs] + [item.name for item in request.uploads]
    if len(names) > limit:
        raise BadRequest(
            "Too many inputs", {"inputs": [f"at most {limit} inputs per run (MAX_INPUTS_PER_RUN)"]}
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadRequest("Input names must be unique", {"inputs": [f"repeated: {duplicates}"]})


@dataclass(frozen=True)
class StoredInput:
    """An uploaded input already in object storage."""

    name: str
    key: str
    size: int
    sha256: str


async def store_uploads(
    runtime: Runtime, prefix: str, uploads: Sequence[Upload]
) -> list[StoredInput]:
    """Stream uploaded files to storage under ``prefix``; on any failure none is kept."""
    stored: list[StoredInput] = []
    try:
        for upload in uploads:
            key = f"{prefix}{upload.name}"
            saved = await runtime.storage.put_stream(
                key, upload.chunks, upload.content_type, runtime.settings.input_max_bytes
            )
            stored.append(StoredInput(upload.name, key, saved.size, saved.sha256))
    except ObjectTooLarge:
        await remove_objects(runtime, [item.key for item in stored])
        raise BadRequest(
            "Input too large", {"files": [f"at most {runtime.settings.input_max_bytes} bytes"]}
        ) from None
    except BaseException:
        await remove_objects(runtime, [item.key for item in stored])
        raise
    return stored


async def add_run(
    session: AsyncSession,
    pipeline: Pipeline,
    url_inputs: Sequence[UrlInput],
    stored: Sequence[StoredInput],
    *,
    uuid: str,
    callback_url: str | None,
    defines: dict[str, str],
    start: bool,
) -> PipelineRun:
    """Add a new run to the session (not committed), numbered from the pipeline's counter.

    QUEUED, then NOT_STARTED too when ``start``: the caller enqueues it after committing.
    """
    run = PipelineRun(
        uuid=uuid,
        pipeline_id=pipeline.id,
        state=RunState.QUEUED.value,
        callback_url=callback_url,
        defines=dict(defines),
        states=[],
        inputs=[PipelineRunInput(name=item.name, url=item.url) for item in url_inputs],
        artifacts=[],
    )
    run.inputs.extend(
        PipelineRunInput(name=item.name, key=item.key, size=item.size, sha256=item.sha256)
        for item in stored
    )
    _record(run, RunState.QUEUED)
    if start:
        _record(run, RunState.NOT_STARTED)
    run.sequence = await repository.next_sequence(session, pipeline.id)
    session.add(run)
    return run


async def create_run(
    session: AsyncSession,
    runtime: Runtime,
    pipeline: Pipeline,
    request: RunRequest,
    *,
    start: bool = True,
) -> PipelineRun:
    """Store the run's uploaded inputs and the run, commit, then enqueue it (when ``start``).

    A run that cannot be enqueued (Redis down) stays NOT_STARTED, committed.
    """
    check_inputs(request, runtime.settings.max_inputs_per_run)
    run_uuid = new_uuid()
    stored = await store_uploads(runtime, f"{pipeline.uuid}/{run_uuid}/inputs/", request.uploads)
    try:
        run = await add_run(
            session,
            pipeline,
            request.url_inputs,
            stored,
            uuid=run_uuid,
            callback_url=request.callback_url,
            defines=request.defines,
            start=start,
        )
        await session.commit()
    except BaseException:
        await remove_objects(runtime, [item.key for item in stored])
        raise
    announce(runtime, run, run.states)
    if start:
        await enqueue(runtime, pipeline, run)
    return run


async def enqueue(runtime: Runtime, pipeline: Pipeline, run: PipelineRun) -> None:
    try:
        await runtime.queue.enqueue(pipeline.uuid, run.uuid, run.attempt)
    except QueueUnavailable as exc:
        logger.warning(
            "%s; the reconciler will enqueue it later",
            exc,
            extra={"run_uuid": run.uuid, "pipeline_uuid": pipeline.uuid},
        )


def announce(runtime: Runtime, run: PipelineRun, states: Sequence[PipelineRunState]) -> None:
    if not run.callback_url:
        return
    for entry in states:
        runtime.callbacks.notify(
            run.uuid,
            Callback(
                url=run.callback_url, body={"pipeline_run_uuid": run.uuid, "state": entry.state}
            ),
        )


async def _compare_and_set(
    session: AsyncSession, run: PipelineRun, expected: dict[str, Any], values: dict[str, Any]
) -> bool:
    """UPDATE the run only if its columns still hold ``expected``; False when they moved."""
    conditions = [getattr(PipelineRun, name) == value for name, value in expected.items()]
    result = await session.execute(
        update(PipelineRun)
        .where(PipelineRun.id == run.id, *conditions)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def _reload(session: AsyncSession, pipeline_id: int, run_uuid: str) -> PipelineRun:
    """The run's row as committed (without its states, inputs and artifacts)."""
    fresh = await repository.find_run(session, pipeline_id, run_uuid, full=False)
    if fresh is None:
        raise NotFound("Pipeline run not found")
    return fresh


def _transition_values(run: PipelineRun, update: StateUpdate) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {"state": update.state.value}
    if update.state is RunState.RUNNING:
        values |= {
            "started_at": now,
            "heartbeat_at": now,
            "attempt": run.attempt + 1,
            "worker_claim": update.claim,
            "progress": None,
        }
    if update.state.is_final:
        values["completed_at"] = now
        values["exit_code"] = update.exit_code
        values["failure_reason"] = update.failure_reason
        if update.state is RunState.COMPLETED:
            values["progress"] = 100
    return values


async def change_state(
    session: AsyncSession,
    runtime: Runtime,
    pipeline: Pipeline,
    run: PipelineRun,
    update: StateUpdate,
) -> PipelineRun:
    """Apply a state change decided by the state machine; the same state again is a no-op.
    Answers the run's row as it is now (relationships not loaded)."""
    pipeline_id, run_uuid = pipeline.id, run.uuid  # a rollback expires the objects
    names = {"run_uuid": run_uuid, "pipeline_uuid": pipeline.uuid}
    for _ in range(CAS_ATTEMPTS):
        stale = claim_refusal(RunState(run.state), run.worker_claim, update.claim)
        if stale:
            raise BadRequest(stale, {"claim": [stale]})
        decision = decide_transition(RunState(run.state), update.state)
        if decision.refusal:
            raise BadRequest(decision.refusal, {"state": [f"the run is {run.state}"]})
        if not decision.apply:
            return run
        values = _transition_values(run, update)
        previous, previous_changed_at = RunState(run.state), run.updated_at
        if await _compare_and_set(session, run, {"state": run.state}, values):
            entry = PipelineRunState(run_id=run.id, state=update.state.value, created_at=utcnow())
            session.add(entry)
            await session.commit()
            run = await _reload(session, pipeline_id, run_uuid)
            observe_run_change(previous, previous_changed_at, run)
            logger.info(
                "run %s: %s → %s",
                run_uuid,
                previous.value,
                run.state,
                extra=names | {"state": run.state, "previous_state": previous.value},
            )
            announce(runtime, run, [entry])
            runtime.events.publish(run.id)
            return run
        await session.rollback()
        run = await _reload(session, pipeline_id, run_uuid)
    raise BadRequest("The run is changing state too often; try again")


async def start_queued(
    session: AsyncSession,
    runtime: Runtime,
    pipeline: Pipeline,
    run: PipelineRun,
    inputs: Sequence[StoredInput],
) -> bool:
    """QUEUED → NOT_STARTED with ``inputs`` added, then enqueue; False if another caller
    moved the run first (so concurrent upstream completions start it exactly once)."""
    values = {"state": RunState.NOT_STARTED.value}
    if not await _compare_and_set(session, run, {"state": RunState.QUEUED.value}, values):
        await session.rollback()
        return False
    entry = PipelineRunState(run_id=run.id, state=RunState.NOT_STARTED.value, created_at=utcnow())
    session.add(entry)
    session.add_all(
        PipelineRunInput(
            run_id=run.id, name=item.name, key=item.key, size=item.size, sha256=item.sha256
        )
        for item in inputs
    )
    await session.commit()
    announce(runtime, run, [entry])
    await enqueue(runtime, pipeline, run)
    return True


async def cancel_run(
    session: AsyncSession, runtime: Runtime, pipeline: Pipeline, run: PipelineRun
) -> PipelineRun:
    """CANCELLED at once; a job already handed to a worker is aborted (its process killed)."""
    if run.state == RunState.CANCELLED.value:
        return run
    if not can_cancel(RunState(run.state)):
        raise BadRequest(
            f"The run already ended: it is {run.state}", {"state": [f"the run is {run.state}"]}
        )
    was = RunState(run.state)
    run = await change_state(session, runtime, pipeline, run, StateUpdate(state=RunState.CANCELLED))
    if was is not RunState.QUEUED:
        try:
            await runtime.queue.abort(run.uuid, run.attempt)
        except QueueUnavailable as exc:
            logger.warning(
                "%s; the worker will see the run is cancelled",
                exc,
                extra={"run_uuid": run.uuid, "pipeline_uuid": pipeline.uuid},
            )
    return run


async def delete_run(
    session: AsyncSession, runtime: Runtime, pipeline: Pipeline, run: PipelineRun
) -> None:
    """Soft delete; a run that has not ended is cancelled first."""
    if can_cancel(RunState(run.state)):
        run = await cancel_run(session, runtime, pipeline, run)
    run.is_deleted = True
    await session.commit()


async def report(
    session: AsyncSession, pipeline: Pipeline, run: PipelineRun, body: ConsoleAppend, cap: int
) -> ConsoleOut:
    """The worker's console chunks and progress; doubles as its heartbeat."""
    pipeline_id, run_uuid = pipeline.id, run.uuid  # a rollback expires the objects
    for _ in range(CAS_ATTEMPTS):
        out = console.Stream(run.std_out, run.std_out_size)
        err = console.Stream(run.std_err, run.std_err_size)
        try:
            if body.std_out is not None:
                out = console.append(out, body.std_out.offset, body.std_out.data, cap)
            if body.std_err is not None:
                err = console.append(err, body.std_err.offset, body.std_err.data, cap)
        except console.OffsetAhead as exc:
            raise BadRequest("Console chunk out of order", {"offset": [str(exc)]}) from None
        values: dict[str, Any] = {
            "std_out": out.text,
            "std_out_size": out.size,
            "std_err": err.text,
            "std_err_size": err.size,
            "heartbeat_at": utcnow(),
        }
        if body.progress is not None and run.state == RunState.RUNNING.value:
            values["progress"] = body.progress
        expected = {"std_out_size": run.std_out_size, "std_err_size": run.std_err_size}
        if await _compare_and_set(session, run, expected, values):
            await session.commit()
            return ConsoleOut(
                std_out=out.text, std_err=err.text, std_out_size=out.size, std_err_size=err.size
            )
        await session.rollback()
        run = await _reload(session, pipeline_id, run_uuid)
    raise BadRequest("Console appends are racing; retry")


async def replace_console(
    session: AsyncSession, run: PipelineRun, std_out: str, std_err: str, cap: int
) -> None:
    out, err = console.replace(std_out, cap), console.replace(std_err, cap)
    run.std_out, run.std_out_size = out.text, out.size
    run.std_err, run.std_err_size = err.text, err.size
    run.heartbeat_at = utcnow()
    await session.commit()


def console_of(run: PipelineRun) -> ConsoleOut:
    return ConsoleOut(
        std_out=run.std_out,
        std_err=run.std_err,
        std_out_size=run.std_out_size,
        std_err_size=run.std_err_size,
    )


def artifact_key(pipeline: Pipeline, run: PipelineRun, artifact_uuid: str, name: str) -> str:
    return f"{artifact_prefix(pipeline, run)}{artifact_uuid}-{name}"


async def _upsert_artifact(
    session: AsyncSession, runtime: Runtime, run: PipelineRun, name: str, **fields: Any
) -> Artifact:
    """Register ``name``; a repeated registration replaces it (its old object is removed
    after the commit): never two artifacts of one name in a run."""
    existing = await repository.find_artifact_named(session, run.id, name)
    if existing is None:
        artifact = Artifact(uuid=fields.pop("uuid", new_uuid()), run_id=run.id, name=name, **fields)
        session.add(artifact)
        await session.commit()
        return artifact
    replaced = existing.key if existing.key != fields["key"] else None
    fields.pop("uuid", None)
    for field, value in fields.items():
        setattr(existing, field, value)
    await session.commit()
    if replaced:
        await remove_objects(runtime, [replaced])
    return existing


async def upload_artifact(
    session: AsyncSession,
    runtime: Runtime,
    pipeline: Pipeline,
    run: PipelineRun,
    upload: Upload,
) -> Artifact:
    """The original's POST …/artifacts?name=: the API streams the body to storage."""
    artifact_uuid = new_uuid()
    key = artifact_key(pipeline, run, artifact_uuid, upload.name)
    try:
        saved = await runtime.storage.put_stream(
            key, upload.chunks, upload.content_type, runtime.settings.max_content_length
        )
    except ObjectTooLarge:
        raise BadRequest("Artifact too large", {"body": ["over MAX_CONTENT_LENGTH"]}) from None
    return await _upsert_artifact(
        session,
        runtime,
        run,
        upload.name,
        uuid=artifact_uuid,
        key=key,
        size=saved.size,
        sha256=saved.sha256,
        content_type=upload.content_type,
    )


async def register_artifact(
    session: AsyncSession,
    runtime: Runtime,
    pipeline: Pipeline,
    run: PipelineRun,
    registration: ArtifactRegistration,
) -> Artifact:
    """Record an object the worker uploaded itself; it must exist, in this run's prefix."""
    if not registration.key.startswith(artifact_prefix(pipeline, run)):
        raise BadRequest(
            "Artifact key outside the run",
            {"key": [f"must start with {artifact_prefix(pipeline, run)}"]},
        )
    try:
        info = await runtime.storage.stat(registration.key)
    except StorageError as exc:
        raise BadRequest("Artifact key refused", {"key": [str(exc)]}) from None
    if info is None or info.size != registration.size:
        raise BadRequest(
            "No such object in storage", {"key": ["upload the object before registering it"]}
        )
    return await _upsert_artifact(
        session,
        runtime,
        run,
        registration.name,
        key=registration.key,
        size=registration.size,
        sha256=registration.sha256,
        content_type=registration.content_type,
    )


async def artifact_url(runtime: Runtime, artifact: Artifact, base_url: str) -> str:
    presigned = await runtime.storage.presigned_url(artifact.key, artifact.name.rsplit("/", 1)[-1])
    return presigned or f"{base_url.rstrip('/')}/v1/artifacts/{artifact.uuid}"


async def present(runtime: Runtime, run: PipelineRun, base_url: str) -> RunOut:
    """The v1 shape of a run (its relationships must be loaded)."""
    return RunOut(
        uuid=run.uuid,
        sequence=run.sequence,
        created_at=run.created_at,
        inputs=[
            InputOut(name=item.name, url=item.url, size=item.size, sha256=item.sha256)
            for item in run.inputs
        ],
        states=[
            StateOut(state=RunState(item.state), created_at=item.created_at) for item in run.states
        ],
        artifacts=[
            ArtifactOut(
                uuid=item.uuid,
                name=item.name,
                url=await artifact_url(runtime, item, base_url),
                size=item.size,
                sha256=item.sha256,
                content_type=item.content_type,
            )
            for item in run.artifacts
        ],
        state=RunState(run.state),
        progress=run.progress,
        exit_code=run.exit_code,
        failure_reason=run.failure_reason,
        started_at=run.started_at,
        completed_at=run.completed_at,
        attempt=run.attempt,
        callback_url=run.callback_url,
        defines=run.defines,
    )


async def claim_run(
    session: AsyncSession, runtime: Runtime, pipeline: Pipeline, run: PipelineRun, claim: str
) -> Job:
    """NOT_STARTED → RUNNING under ``claim`` (the same claim again: a retried request),
    and the job, in one round trip for the worker."""
    run = await change_state(
        session, runtime, pipeline, run, StateUpdate(state=RunState.RUNNING, claim=claim)
    )
    files: Sequence[PipelineFile] = await list_files(session, pipeline)
    inputs = await repository.run_inputs(session, run.id)
    return Job(
        pipeline_uuid=pipeline.uuid,
        run_uuid=run.uuid,
        kind=pipeline.kind,
        model=pipeline.model,
        arguments=list(pipeline.arguments),
        defines=dict(run.defines),
        timeout_seconds=pipeline.timeout_seconds or runtime.settings.run_timeout_seconds,
        files=[JobFile(name=item.name, key=item.key) for item in files],
        inputs=[JobInput(name=item.name, url=item.url, key=item.key) for item in inputs],
        artifact_prefix=artifact_prefix(pipeline, run),
        std_out_size=run.std_out_size,
        std_err_size=run.std_err_size,
        docker_image_url=pipeline.docker_image_url,
        repository_ssh_url=pipeline.repository_ssh_url,
        repository_branch=pipeline.repository_branch,
        repository_script=pipeline.repository_script,
    )
