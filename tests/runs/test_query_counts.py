"""No request's statement count grows with the rows it answers (benchmark 3, bench/api.py).

A run with 1 state and no inputs or artifacts costs the same statements as one with 6
states, 5 inputs and 5 artifacts; a list of 30 runs as a list of 3. Every relationship is
loaded eagerly, by one query per relationship and request, never per row. The statements
are counted with a ``before_cursor_execute`` listener on the app's engine, for the
request's own task only (the reconciler's passes run in a task of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.harness import Keys
from workflow_service import db
from workflow_service.pagination import Page
from workflow_service.pipelines.models import Pipeline, PipelineFile
from workflow_service.runs import repository
from workflow_service.runs.models import (
    Artifact,
    PipelineRun,
    PipelineRunInput,
    PipelineRunState,
)
from workflow_service.workflows.models import (
    Workflow,
    WorkflowPipeline,
    WorkflowPipelineRun,
    WorkflowRun,
    WorkflowRunState,
)

CLAIM = "c" * 32
SMALL = {"states": 1, "inputs": 0, "artifacts": 0}
LARGE = {"states": 6, "inputs": 5, "artifacts": 5}
HISTORY = ["QUEUED", "NOT_STARTED", "RUNNING", "NOT_STARTED", "RUNNING", "RUNNING"]

_statements: ContextVar[list[str] | None] = ContextVar("statements", default=None)


@pytest.fixture(autouse=True)
def count_statements(database: db.Database) -> Iterator[None]:
    """Record the statements run on behalf of the current task (see ``count``)."""

    def record(*args: Any) -> None:
        seen = _statements.get()
        if seen is not None:
            seen.append(args[2])  # (connection, cursor, statement, ...)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield
    event.remove(engine, "before_cursor_execute", record)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    worker: bool = False
    body: dict[str, Any] | None = None


async def count(client: httpx.AsyncClient, keys: Keys, call: Call) -> tuple[int, list[str]]:
    """The statements one request runs (it must succeed)."""
    seen: list[str] = []
    token = _statements.set(seen)
    try:
        response = await client.request(
            call.method,
            call.path,
            json=call.body,
            headers={"Workflow-API-Key": keys.worker} if call.worker else None,
        )
    finally:
        _statements.reset(token)
    assert response.status_code == 200, f"{call}: {response.status_code} {response.text}"
    return len(seen), seen


def make_run(
    pipeline: Pipeline, sequence: int, *, states: int, inputs: int, artifacts: int
) -> PipelineRun:
    history = HISTORY[:states] if states > 1 else ["RUNNING"]
    return PipelineRun(
        pipeline_id=pipeline.id,
        sequence=sequence,
        state=history[-1],
        defines={"STOPTIME": "2020-01-02"},
        worker_claim=CLAIM,
        states=[PipelineRunState(state=state) for state in history],
        inputs=[
            PipelineRunInput(name=f"in{i}.csv", url=f"https://example.com/in{i}.csv")
            for i in range(inputs)
        ],
        artifacts=[
            Artifact(
                name=f"out{i}.csv",
                key=f"{pipeline.uuid}/run{sequence}/out{i}.csv",
                size=10 + i,
                sha256="0" * 64,
                content_type="text/csv",
            )
            for i in range(artifacts)
        ],
    )


async def add_pipeline(session: AsyncSession, name: str, files: int = 0) -> Pipeline:
    pipeline = Pipeline(name=name, kind="gridlabd", model="model.glm", arguments=[])
    session.add(pipeline)
    await session.flush()
    session.add_all(
        PipelineFile(
            pipeline_id=pipeline.id,
            name=f"file{i}.glm",
            key=f"{pipeline.uuid}/files/file{i}.glm",
            size=100,
            sha256="1" * 64,
            content_type="text/plain",
        )
        for i in range(files)
    )
    return pipeline


async def add_runs(
    session: AsyncSession, pipeline: Pipeline, count: int, shape: dict[str, int]
) -> list[PipelineRun]:
    runs = [make_run(pipeline, pipeline.run_count + i + 1, **shape) for i in range(count)]
    pipeline.run_count += count
    session.add_all(runs)
    await session.flush()
    return runs


async def add_workflow_run(
    session: AsyncSession,
    workflow: Workflow,
    members: Sequence[tuple[WorkflowPipeline, PipelineRun]],
) -> WorkflowRun:
    workflow_run = WorkflowRun(
        workflow_id=workflow.id,
        state="RUNNING",
        states=[WorkflowRunState(state="NOT_STARTED"), WorkflowRunState(state="RUNNING")],
        workflow_pipeline_runs=[
            WorkflowPipelineRun(workflow_pipeline_id=node.id, pipeline_run_id=run.id)
            for node, run in members
        ],
    )
    session.add(workflow_run)
    await session.flush()
    return workflow_run


@dataclass
class World:
    """Pairs of fixtures that differ only in how many rows a request answers."""

    small: dict[str, str] = field(default_factory=dict)
    large: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def world(database: db.Database) -> World:
    made = World()
    async with database.sessions() as session:
        for size, side, files, runs in (
            ("small", made.small, 0, 3),
            ("large", made.large, 5, 30),
        ):
            shape = SMALL if size == "small" else LARGE
            pipeline = await add_pipeline(session, f"{size} runs", files)
            listed = await add_runs(session, pipeline, runs, shape)
            workflow = Workflow(name=f"{size} workflow")
            session.add(workflow)
            await session.flush()
            nodes = [WorkflowPipeline(workflow_id=workflow.id, pipeline_id=pipeline.id)]
            if size == "large":
                nodes += [
                    WorkflowPipeline(workflow_id=workflow.id, pipeline_id=pipeline.id)
                    for _ in range(3)
                ]
            session.add_all(nodes)
            await session.flush()
            members = list(zip(nodes, listed, strict=False))
            workflow_runs = [await add_workflow_run(session, workflow, members)]
            if size == "large":
                extra = await add_runs(session, pipeline, 3 * len(nodes), shape)
                for index in range(3):
                    chunk = extra[index * len(nodes) : (index + 1) * len(nodes)]
                    workflow_runs.append(
                        await add_workflow_run(
                            session, workflow, list(zip(nodes, chunk, strict=True))
                        )
                    )
            side.update(
                pipeline=pipeline.uuid,
                run=listed[0].uuid,
                workflow=workflow.uuid,
                workflow_run=workflow_runs[0].uuid,
            )
        await session.commit()
    return made


def run_path(side: dict[str, str], tail: str = "") -> str:
    return f"/v1/pipelines/{side['pipeline']}/runs/{side['run']}{tail}"


CASES: dict[str, Callable[[dict[str, str]], Call]] = {
    "GET run": lambda side: Call("GET", run_path(side)),
    "list runs": lambda side: Call("GET", f"/v1/pipelines/{side['pipeline']}/runs"),
    "list runs, a page": lambda side: Call("GET", f"/v1/pipelines/{side['pipeline']}/runs?limit=2"),
    "claim run (the worker's job)": lambda side: Call(
        "POST", run_path(side, "/claim"), worker=True, body={"claim": CLAIM}
    ),
    "GET console": lambda side: Call("GET", run_path(side, "/console")),
    "console append": lambda side: Call(
        "POST", run_path(side, "/console"), worker=True, body={"progress": 5}
    ),
    "GET workflow run": lambda side: Call(
        "GET", f"/v1/workflows/{side['workflow']}/runs/{side['workflow_run']}"
    ),
    "list workflow runs": lambda side: Call("GET", f"/v1/workflows/{side['workflow']}/runs"),
    "GET pipeline": lambda side: Call("GET", f"/v1/pipelines/{side['pipeline']}"),
    "list pipeline files": lambda side: Call("GET", f"/v1/pipelines/{side['pipeline']}/files"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_statements_do_not_grow_with_rows(
    case: str, world: World, client: httpx.AsyncClient, keys: Keys
) -> None:
    """Small: runs with 1 state, no inputs, no artifacts; 3 runs in the list; a workflow
    run of 1 pipeline run; no pipeline files. Large: 6 states, 5 inputs, 5 artifacts;
    30 runs (plus 12 of the workflow runs); 4 pipeline runs per workflow run and 4
    workflow runs; 5 files."""
    small, _ = await count(client, keys, CASES[case](world.small))
    large, large_sql = await count(client, keys, CASES[case](world.large))
    assert small > 0, "no statement seen: the counter is not wired"
    assert large == small, (
        f"{case}: {small} statements for the small fixture, {large} for the large one:\n"
        + "\n".join(large_sql)
    )


async def test_list_pipelines(
    database: db.Database, world: World, client: httpx.AsyncClient, keys: Keys
) -> None:
    few = await count(client, keys, Call("GET", "/v1/pipelines"))
    async with database.sessions() as session:
        for index in range(27):
            await add_pipeline(session, f"more {index}", files=2)
        await session.commit()
    many = await count(client, keys, Call("GET", "/v1/pipelines"))
    assert few[0] > 0 and many == few


async def test_the_count_catches_loading_per_row(
    world: World, client: httpx.AsyncClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above fails when a list loads each run's relationships on its own."""

    async def per_row(
        session: AsyncSession, pipeline: Pipeline, page: Page
    ) -> Sequence[PipelineRun]:
        query = select(PipelineRun).where(PipelineRun.pipeline_id == pipeline.id)
        runs = (await session.scalars(query.order_by(PipelineRun.id))).all()
        for run in runs:
            await session.refresh(run, ["states", "inputs", "artifacts"])
        return runs

    monkeypatch.setattr(repository, "list_runs", per_row)
    call = CASES["list runs"]
    small = (await count(client, keys, call(world.small)))[0]
    large = (await count(client, keys, call(world.large)))[0]
    assert large - small >= 27
