"""Every table of the service, so that ``Base.metadata`` is complete (alembic, tests)."""

from workflow_service.auth.models import Application
from workflow_service.db import Base
from workflow_service.pipelines.models import Pipeline, PipelineFile, PipelineKind
from workflow_service.runs.models import Artifact, PipelineRun, PipelineRunInput, PipelineRunState
from workflow_service.workflows.models import (
    Workflow,
    WorkflowPipeline,
    WorkflowPipelineDependency,
    WorkflowPipelineRun,
    WorkflowRun,
    WorkflowRunState,
)

__all__ = [
    "Application",
    "Artifact",
    "Base",
    "Pipeline",
    "PipelineFile",
    "PipelineKind",
    "PipelineRun",
    "PipelineRunInput",
    "PipelineRunState",
    "Workflow",
    "WorkflowPipeline",
    "WorkflowPipelineDependency",
    "WorkflowPipelineRun",
    "WorkflowRun",
    "WorkflowRunState",
]
