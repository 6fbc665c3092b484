"""Request and response models of the v1 workflows API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from workflow_service.runs.schemas import RunOut, StateOut
from workflow_service.runs.states import RunState
from workflow_service.schemas import Description, HexUuid, Name, UuidSearch

MAX_EDGES = 100


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a uuid")
    return values


Edges = Annotated[list[HexUuid], Field(max_length=MAX_EDGES), AfterValidator(_distinct)]


class WorkflowIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "feeder study", "description": "feeder → analysis → report"}]
        },
    )

    name: Name
    description: Description = ""


class WorkflowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    uuid: HexUuid
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class WorkflowSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uuids: UuidSearch


class WorkflowPipelineIn(BaseModel):
    """A pipeline placed in the workflow, with its edges (PUT replaces them all)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "pipeline_uuid": "0f8e3a1c2b4d4e6f8a9b0c1d2e3f4a5b",
                    "source_workflow_pipelines": ["7c5edd564fa245efb187f7855137a94a"],
                    "destination_workflow_pipelines": [],
                }
            ]
        },
    )

    pipeline_uuid: HexUuid
    source_workflow_pipelines: Annotated[
        Edges, Field(description="Workflow pipelines whose artifacts flow into this one.")
    ] = []
    destination_workflow_pipelines: Annotated[
        Edges, Field(description="Workflow pipelines this one's artifacts flow into.")
    ] = []


class WorkflowPipelineOut(BaseModel):
    uuid: HexUuid
    pipeline_uuid: HexUuid
    source_workflow_pipelines: list[HexUuid]
    destination_workflow_pipelines: list[HexUuid]
    created_at: datetime
    updated_at: datetime


class WorkflowPipelineRunOut(BaseModel):
    uuid: HexUuid
    workflow_pipeline_uuid: HexUuid
    pipeline_uuid: HexUuid
    pipeline_run: RunOut


class WorkflowRunOut(BaseModel):
    uuid: HexUuid
    state: RunState = Field(
        description="NOT_STARTED, RUNNING once any of its runs is, then COMPLETED, FAILED "
        "or CANCELLED."
    )
    states: list[StateOut]
    workflow_pipeline_runs: list[WorkflowPipelineRunOut]
    callback_url: str | None
    created_at: datetime
    updated_at: datetime
