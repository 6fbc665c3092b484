"""What each dashboard fragment shows, read through the domain services and
repositories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.dashboard.graph import Layout, layout
from workflow_service.pagination import Page
from workflow_service.pipelines import repository as pipelines_repository
from workflow_service.pipelines.models import Pipeline, PipelineKind
from workflow_service.pipelines.service import get_pipeline
from workflow_service.runs import repository as runs_repository
from workflow_service.runs import service as runs_service
from workflow_service.runs.models import PipelineRun
from workflow_service.runs.schemas import RunOut
from workflow_service.runs.states import RunState
from workflow_service.runtime import Runtime
from workflow_service.workflows import repository as workflows_repository
from workflow_service.workflows import service as workflows_service
from workflow_service.workflows.models import Workflow

RECENT_RUNS = 50
RECENT_WORKFLOW_RUNS = 10
EVERYTHING = Page(limit=None, after_id=None)


def is_final(state: str) -> bool:
    return RunState(state).is_final


async def pipelines(session: AsyncSession) -> Sequence[Pipeline]:
    return await pipelines_repository.list_pipelines(session, EVERYTHING)


async def gridlabd_pipelines(session: AsyncSession) -> list[Pipeline]:
    return [p for p in await pipelines(session) if p.kind == PipelineKind.GRIDLABD.value]


async def workflows(session: AsyncSession) -> Sequence[Workflow]:
    return await workflows_repository.list_workflows(session, EVERYTHING)


@dataclass(frozen=True)
class PipelineRuns:
    pipeline: Pipeline
    runs: Sequence[PipelineRun]
    live: bool


async def pipeline_runs(session: AsyncSession, pipeline_uuid: str) -> PipelineRuns:
    """The pipeline's newest runs, newest first, without their consoles."""
    pipeline = await get_pipeline(session, pipeline_uuid)
    runs = await runs_repository.newest_runs(session, pipeline.id, RECENT_RUNS)
    return PipelineRuns(pipeline, runs, live=any(not is_final(run.state) for run in runs))


@dataclass(frozen=True)
class RunView:
    pipeline: Pipeline
    run: RunOut
    live: bool


async def run(
    session: AsyncSession, runtime: Runtime, pipeline_uuid: str, run_uuid: str, base_url: str
) -> RunView:
    pipeline, found = await runs_service.get_run(session, pipeline_uuid, run_uuid)
    out = await runs_service.present(runtime, found, base_url)
    return RunView(pipeline, out, live=not out.state.is_final)


@dataclass(frozen=True)
class GraphNode:
    """A workflow pipeline in the graph, with the run that executed it (if any)."""

    x: int
    y: int
    label: str
    state: str | None
    href: str | None


@dataclass(frozen=True)
class Graph:
    layout: Layout
    nodes: list[GraphNode]


@dataclass(frozen=True)
class WorkflowRunView:
    uuid: str
    state: str
    created_at: datetime
    graph: Graph


@dataclass(frozen=True)
class WorkflowView:
    workflow: Workflow
    graph: Graph
    runs: list[WorkflowRunView]
    live: bool


def _graph(placed: Layout, members: dict[int, PipelineRun] | None = None) -> Graph:
    nodes = []
    for node in placed.nodes:
        member = (members or {}).get(node.id)
        nodes.append(
            GraphNode(
                x=node.x,
                y=node.y,
                label=node.label,
                state=member.state if member else None,
                href=(
                    f"/ui/pipelines/{member.pipeline.uuid}/runs/{member.uuid}" if member else None
                ),
            )
        )
    return Graph(placed, nodes)


async def workflow(session: AsyncSession, workflow_uuid: str) -> WorkflowView:
    """The workflow's DAG, and its newest runs each drawn on it, coloured by state."""
    found = await workflows_service.get_workflow(session, workflow_uuid)
    nodes = await workflows_repository.workflow_pipelines(session, found.id)
    edges = await workflows_repository.edges(session, found.id)
    placed = layout([(node.id, node.pipeline.name) for node in nodes], edges)
    runs = await workflows_repository.newest_workflow_runs(session, found.id, RECENT_WORKFLOW_RUNS)
    views = [
        WorkflowRunView(
            uuid=item.uuid,
            state=item.state,
            created_at=item.created_at,
            graph=_graph(
                placed,
                {m.workflow_pipeline_id: m.pipeline_run for m in item.workflow_pipeline_runs},
            ),
        )
        for item in runs
    ]
    return WorkflowView(
        workflow=found,
        graph=_graph(placed),
        runs=views,
        live=any(not is_final(item.state) for item in runs),
    )
