"""Workflow rules with I/O: editing the DAG, starting workflow runs, and advancing them.

Advancing a workflow run is one idempotent step, run after any of its pipeline
runs changed state (off the request path, by the propagator): stop everything
once a run failed or was cancelled, else start each QUEUED run whose upstream
runs all COMPLETED (with their artifacts as inputs, by storage key, no copy),
then derive the workflow run's state. Starting is a compare-and-set on the
run's state, so two upstream runs completing at once start it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.db import new_uuid, utcnow
from workflow_service.errors import BadRequest, NotFound
from workflow_service.pipelines.repository import find_pipeline
from workflow_service.pipelines.service import remove_objects
from workflow_service.runs import service as runs
from workflow_service.runs.callbacks import Callback
from workflow_service.runs.models import PipelineRun
from workflow_service.runs.service import RunRequest, StoredInput
from workflow_service.runs.states import RunState
from workflow_service.runtime import Runtime
from workflow_service.workflows import repository, rules
from workflow_service.workflows.models import (
    Workflow,
    WorkflowPipeline,
    WorkflowPipelineDependency,
    WorkflowPipelineRun,
    WorkflowRun,
    WorkflowRunState,
)
from workflow_service.workflows.schemas import WorkflowIn, WorkflowPipelineIn, WorkflowPipelineOut

logger = logging.getLogger(__name__)


async def get_workflow(session: AsyncSession, uuid: str) -> Workflow:
    workflow = await repository.find_workflow(session, uuid)
    if workflow is None:
        raise NotFound("Workflow not found")
    return workflow


async def create_workflow(session: AsyncSession, body: WorkflowIn) -> Workflow:
    workflow = Workflow(name=body.name, description=body.description)
    session.add(workflow)
    await session.commit()
    return workflow


async def update_workflow(session: AsyncSession, uuid: str, body: WorkflowIn) -> Workflow:
    workflow = await get_workflow(session, uuid)
    workflow.name, workflow.description = body.name, body.description
    await session.commit()
    return workflow


async def delete_workflow(session: AsyncSession, uuid: str) -> None:
    """Soft delete: its pipelines become free to delete; its runs stay."""
    workflow = await get_workflow(session, uuid)
    workflow.is_deleted = True
    await session.commit()


# --- workflow pipelines -------------------------------------------------------------


def present_pipelines(
    nodes: Sequence[WorkflowPipeline], edges: Sequence[tuple[int, int]]
) -> list[WorkflowPipelineOut]:
    uuids = {node.id: node.uuid for node in nodes}
    return [
        WorkflowPipelineOut(
            uuid=node.uuid,
            pipeline_uuid=node.pipeline.uuid,
            source_workflow_pipelines=[uuids[a] for a, b in edges if b == node.id and a in uuids],
            destination_workflow_pipelines=[
                uuids[b] for a, b in edges if a == node.id and b in uuids
            ],
            created_at=node.created_at,
            updated_at=node.updated_at,
        )
        for node in nodes
    ]


async def _resolve_neighbours(
    session: AsyncSession,
    workflow: Workflow,
    nodes: Sequence[WorkflowPipeline],
    body: WorkflowPipelineIn,
) -> dict[str, int]:
    """uuid → id of every source and destination; 400 naming an unknown or foreign one."""
    own = {node.uuid: node.id for node in nodes}
    for field in ("source_workflow_pipelines", "destination_workflow_pipelines"):
        for uuid in getattr(body, field):
            if uuid in own:
                continue
            elsewhere = await repository.find_workflow_pipeline_anywhere(session, uuid)
            reason = (
                f"workflow pipeline {uuid} belongs to another workflow"
                if elsewhere is not None
                else f"workflow pipeline {uuid} does not exist in this workflow"
            )
            raise BadRequest(reason, {field: [reason]})
    return own


async def _place(
    session: AsyncSession,
    workflow: Workflow,
    body: WorkflowPipelineIn,
    node: WorkflowPipeline | None,
) -> WorkflowPipeline:
    """Create (``node`` None) or replace a workflow pipeline and all its edges."""
    pipeline = await find_pipeline(session, body.pipeline_uuid)
    if pipeline is None:
        reason = f"pipeline {body.pipeline_uuid} does not exist"
        raise BadRequest(reason, {"pipeline_uuid": [reason]})
    nodes = await repository.workflow_pipelines(session, workflow.id)
    ids = await _resolve_neighbours(session, workflow, nodes, body)
    uuid = node.uuid if node is not None else new_uuid()
    by_id = {value: key for key, value in ids.items()}
    others = [
        (by_id[a], by_id[b])
        for a, b in await repository.edges(session, workflow.id)
        if a in by_id and b in by_id
    ]
    offending = rules.cycle_maker(
        uuid, body.source_workflow_pipelines, body.destination_workflow_pipelines, others
    )
    if offending is not None:
        field = (
            "source_workflow_pipelines"
            if offending in body.source_workflow_pipelines
            else "destination_workflow_pipelines"
        )
        reason = (
            f"an edge to itself ({offending}) is a cycle"
            if offending == uuid
            else f"the edge with {offending} would close a cycle"
        )
        raise BadRequest(reason, {field: [reason]})
    if node is None:
        node = WorkflowPipeline(uuid=uuid, workflow_id=workflow.id, pipeline_id=pipeline.id)
        session.add(node)
        await session.flush()
    else:
        node.pipeline_id = pipeline.id
        node.updated_at = utcnow()
        await _drop_edges(session, node.id)
    session.add_all(
        [
            WorkflowPipelineDependency(
                from_workflow_pipeline_id=ids[source], to_workflow_pipeline_id=node.id
            )
            for source in body.source_workflow_pipelines
        ]
        + [
            WorkflowPipelineDependency(
                from_workflow_pipeline_id=node.id, to_workflow_pipeline_id=ids[destination]
            )
            for destination in body.destination_workflow_pipelines
        ]
    )
    await session.commit()
    return node


async def _drop_edges(session: AsyncSession, node_id: int) -> None:
    await session.execute(
        delete(WorkflowPipelineDependency).where(
            (WorkflowPipelineDependency.from_workflow_pipeline_id == node_id)
            | (WorkflowPipelineDependency.to_workflow_pipeline_id == node_id)
        )
    )


async def find_node(session: AsyncSession, workflow: Workflow, uuid: str) -> WorkflowPipeline:
    for node in await repository.workflow_pipelines(session, workflow.id):
        if node.uuid == uuid:
            return node
    raise NotFound("Workflow pipeline not found")


async def add_node(
    session: AsyncSession, workflow: Workflow, body: WorkflowPipelineIn
) -> WorkflowPipeline:
    return await _place(session, workflow, body, None)


async def replace_node(
    session: AsyncSession, workflow: Workflow, uuid: str, body: WorkflowPipelineIn
) -> WorkflowPipeline:
    return await _place(session, workflow, body, await find_node(session, workflow, uuid))


async def delete_node(session: AsyncSession, workflow: Workflow, uuid: str) -> None:
    """Soft delete; its edges are removed."""
    node = await find_node(session, workflow, uuid)
    node.is_deleted = True
    await _drop_edges(session, node.id)
    await session.commit()


async def present_nodes(session: AsyncSession, workflow: Workflow) -> list[WorkflowPipelineOut]:
    nodes = await repository.workflow_pipelines(session, workflow.id)
    return present_pipelines(nodes, await repository.edges(session, workflow.id))


async def present_node(
    session: AsyncSession, workflow: Workflow, node: WorkflowPipeline
) -> WorkflowPipelineOut:
    return next(item for item in await present_nodes(session, workflow) if item.uuid == node.uuid)


# --- workflow runs --------------------------------------------------------------------


def _announce_workflow(runtime: Runtime, workflow_run: WorkflowRun, state: RunState) -> None:
    if workflow_run.callback_url:
        runtime.callbacks.notify(
            workflow_run.uuid,
            Callback(
                url=workflow_run.callback_url,
                body={"workflow_run_uuid": workflow_run.uuid, "state": state.value},
            ),
        )


async def create_workflow_run(
    session: AsyncSession, runtime: Runtime, workflow: Workflow, request: RunRequest
) -> WorkflowRun:
    """One pipeline run per live workflow pipeline: roots NOT_STARTED with the request's
    inputs (uploaded files stored once, shared by key), the others QUEUED with none."""
    nodes = await repository.workflow_pipelines(session, workflow.id)
    if not nodes:
        raise BadRequest(
            "The workflow has no pipelines", {"workflow": ["add workflow pipelines first"]}
        )
    runs.check_inputs(request, runtime.settings.max_inputs_per_run)
    sources = rules.sources_of(
        [node.id for node in nodes], await repository.edges(session, workflow.id)
    )
    workflow_run_uuid = new_uuid()
    stored = await runs.store_uploads(
        runtime, f"workflows/{workflow.uuid}/{workflow_run_uuid}/inputs/", request.uploads
    )
    try:
        workflow_run = WorkflowRun(
            uuid=workflow_run_uuid,
            workflow_id=workflow.id,
            state=RunState.NOT_STARTED.value,
            callback_url=request.callback_url,
            states=[WorkflowRunState(state=RunState.NOT_STARTED.value, created_at=utcnow())],
            workflow_pipeline_runs=[],
        )
        session.add(workflow_run)
        started: list[tuple[WorkflowPipeline, PipelineRun]] = []
        for node in nodes:
            root = not sources[node.id]
            run = await runs.add_run(
                session,
                node.pipeline,
                request.url_inputs if root else [],
                stored if root else [],
                uuid=new_uuid(),
                callback_url=request.callback_url,
                defines=request.defines,
                start=root,
            )
            workflow_run.workflow_pipeline_runs.append(
                WorkflowPipelineRun(workflow_pipeline_id=node.id, pipeline_run=run)
            )
            started.append((node, run))
        await session.commit()
    except BaseException:
        await remove_objects(runtime, [item.key for item in stored])
        raise
    _announce_workflow(runtime, workflow_run, RunState.NOT_STARTED)
    for node, run in started:
        runs.announce(runtime, run, run.states)
        if RunState(run.state) is RunState.NOT_STARTED:
            await runs.enqueue(runtime, node.pipeline, run)
    found = await repository.find_workflow_run(session, workflow.id, workflow_run_uuid)
    assert found is not None
    return found


async def get_workflow_run(session: AsyncSession, workflow: Workflow, uuid: str) -> WorkflowRun:
    found = await repository.find_workflow_run(session, workflow.id, uuid)
    if found is None:
        raise NotFound("Workflow run not found")
    return found


async def advance(session: AsyncSession, runtime: Runtime, workflow_run_id: int) -> None:
    """Bring a workflow run one step forward; safe to repeat and to run concurrently.

    The plan is made from one read, as plain values, then each step re-reads its run:
    a step that loses a race (its compare-and-set fails) rolls back, which must not
    leave later steps holding stale objects.
    """
    workflow_run = await repository.load_workflow_run(session, workflow_run_id)
    if workflow_run is None:
        return
    members = workflow_run.workflow_pipeline_runs
    sources = rules.sources_of(
        [member.workflow_pipeline_id for member in members],
        await repository.edges(session, workflow_run.workflow_id),
    )
    states = {m.workflow_pipeline_id: RunState(m.pipeline_run.state) for m in members}
    by_node = {member.workflow_pipeline_id: member.pipeline_run for member in members}
    to_cancel: list[tuple[str, str]] = []
    to_start: list[tuple[str, str, list[StoredInput]]] = []
    for member in members:
        run, node = member.pipeline_run, member.workflow_pipeline_id
        address = (run.pipeline.uuid, run.uuid)
        if rules.must_stop(states.values()):
            if not RunState(run.state).is_final:
                to_cancel.append(address)
        elif RunState(run.state) is RunState.QUEUED and rules.is_ready(sources[node], states):
            offered = [
                (artifact.key, artifact.name, artifact.size, artifact.sha256)
                for source in sorted(sources[node])
                for artifact in by_node[source].artifacts
            ]
            named = rules.input_names([(key, name) for key, name, _, _ in offered])
            inputs = [
                StoredInput(name=name, key=key, size=size, sha256=sha256)
                for (key, name), (_, _, size, sha256) in zip(named, offered, strict=True)
            ]
            to_start.append((*address, inputs))
    for pipeline_uuid, run_uuid in to_cancel:
        await _cancel_member(session, runtime, pipeline_uuid, run_uuid)
    for pipeline_uuid, run_uuid, inputs in to_start:
        pipeline, run = await runs.get_run(session, pipeline_uuid, run_uuid, full=False)
        await runs.start_queued(session, runtime, pipeline, run, inputs)
    await _settle(session, runtime, workflow_run_id)


async def _cancel_member(
    session: AsyncSession, runtime: Runtime, pipeline_uuid: str, run_uuid: str
) -> None:
    try:
        pipeline, run = await runs.get_run(session, pipeline_uuid, run_uuid)
    except NotFound:  # deleted meanwhile: deleting cancelled it already
        return
    if not RunState(run.state).is_final:
        await runs.cancel_run(session, runtime, pipeline, run)


async def _settle(session: AsyncSession, runtime: Runtime, workflow_run_id: int) -> None:
    """Record the workflow run's state derived from its runs (compare-and-set)."""
    workflow_run = await repository.load_workflow_run(session, workflow_run_id)
    if workflow_run is None:
        return
    current = RunState(workflow_run.state)
    derived = rules.workflow_state(
        [RunState(member.pipeline_run.state) for member in workflow_run.workflow_pipeline_runs]
    )
    if derived is current or not rules.workflow_can_move(current, derived):
        return
    result = await session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.id == workflow_run_id, WorkflowRun.state == current.value)
        .values(state=derived.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        await session.rollback()
        return
    session.add(
        WorkflowRunState(workflow_run_id=workflow_run_id, state=derived.value, created_at=utcnow())
    )
    await session.commit()
    _announce_workflow(runtime, workflow_run, derived)


async def cancel_workflow_run(
    session: AsyncSession, runtime: Runtime, workflow_run: WorkflowRun
) -> None:
    """Every unfinished run CANCELLED (running ones aborted); the workflow run CANCELLED."""
    current = RunState(workflow_run.state)
    if current.is_final:
        if current is RunState.CANCELLED:
            return
        raise BadRequest(
            f"The workflow run already ended: it is {current.value}",
            {"state": [f"the workflow run is {current.value}"]},
        )
    workflow_run_id = workflow_run.id
    unfinished = [
        (member.pipeline_run.pipeline.uuid, member.pipeline_run.uuid)
        for member in workflow_run.workflow_pipeline_runs
        if not RunState(member.pipeline_run.state).is_final
    ]
    for pipeline_uuid, run_uuid in unfinished:
        await _cancel_member(session, runtime, pipeline_uuid, run_uuid)
    await _settle(session, runtime, workflow_run_id)
