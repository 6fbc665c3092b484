from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workflow_service.auth.scheme import Permission
from workflow_service.schemas import HexUuid, Text

ApplicationName = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "grid worker 1", "permissions": ["PIPELINES_WORKER"]}]
        },
    )

    name: ApplicationName
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=3)]


class ApplicationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    uuid: HexUuid
    name: str
    permissions: list[Permission]
    key_prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime


class ApplicationCreated(ApplicationOut):
    api_key: str = Field(description="The key itself. Shown this once; only its hash is kept.")
