"""Every table of the service, so that ``Base.metadata`` is complete (alembic, tests)."""

from workflow_service.auth.models import Application, Permission
from workflow_service.db import Base
from workflow_service.pipelines.models import Pipeline, PipelineKind

__all__ = ["Application", "Base", "Permission", "Pipeline", "PipelineKind"]
