"""Request and response models of the v1 pipelines API.

A create or update body without ``kind`` is a ``script`` pipeline validated
by the original's rules, so old clients see exactly the old validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

from workflow_service.pipelines.models import PipelineKind
from workflow_service.schemas import (
    Description,
    FileName,
    HexUuid,
    Name,
    Text,
    UuidSearch,
    not_blank,
)

MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


def _no_control_characters(value: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


def _not_an_option(value: str) -> str:
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    return value


def _relative_script_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value:
        raise ValueError("must be a path relative to the repository, with / separators")
    if any(part == ".." for part in parts):
        raise ValueError("must stay inside the repository (no '..')")
    if any(part in {"", "."} for part in parts):
        raise ValueError("must be a normalised relative path")
    return value


def _glm_file(value: str) -> str:
    if not value.lower().endswith(".glm"):
        raise ValueError("must name a .glm file")
    return value


Reference = Annotated[
    Text,
    StringConstraints(min_length=1, max_length=2000),
    AfterValidator(not_blank),
    AfterValidator(_no_control_characters),
]
Branch = Annotated[
    Text,
    StringConstraints(min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_an_option),
]
ScriptPath = Annotated[
    Text,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_an_option),
    AfterValidator(_relative_script_path),
]
Argument = Annotated[Text, StringConstraints(max_length=1000)]


class ScriptPipeline(BaseModel):
    """An OpenFIDO pipeline: a repository whose script runs in `docker_image_url`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "hosting capacity",
                    "description": "OpenFIDO hosting capacity analysis",
                    "docker_image_url": "debian:bookworm",
                    "repository_ssh_url": "https://github.com/openfido/hosting_capacity.git",
                    "repository_branch": "main",
                }
            ]
        },
    )

    kind: Literal["script"] = "script"
    name: Name
    description: Annotated[Description | None, Field(description="Null is stored as ''.")] = ""
    docker_image_url: Reference
    repository_ssh_url: Reference
    repository_branch: Branch = "master"
    repository_script: ScriptPath = "openfido.sh"


class GridlabdPipeline(BaseModel):
    """A native GridLAB-D pipeline: the engine runs `model` with `arguments`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "gridlabd",
                    "name": "IEEE 13 feeder",
                    "description": "One day of the IEEE 13-node test feeder",
                    "model": "ieee13.glm",
                    "arguments": ["-D", "minimum_timestep=60"],
                    "timeout_seconds": 600,
                }
            ]
        },
    )

    kind: Literal["gridlabd"]
    name: Name
    description: Annotated[Description | None, Field(description="Null is stored as ''.")] = ""
    model: Annotated[
        FileName | None,
        AfterValidator(lambda value: None if value is None else _glm_file(value)),
        Field(description="Entry model file name; default: the only .glm file of the run."),
    ] = None
    arguments: Annotated[
        list[Argument],
        Field(
            max_length=100, description="Extra engine arguments, as a list (never a shell string)."
        ),
    ] = []
    timeout_seconds: Annotated[
        int | None,
        Field(ge=1, le=MAX_TIMEOUT_SECONDS, description="Runs longer than this are killed."),
    ] = None


def _kind_of(value: Any) -> str:
    kind = value.get("kind", "script") if isinstance(value, dict) else getattr(value, "kind", None)
    return f"<{kind}>"


PipelineIn = Annotated[
    Annotated[ScriptPipeline, Tag("<script>")] | Annotated[GridlabdPipeline, Tag("<gridlabd>")],
    Discriminator(
        _kind_of,
        custom_error_type="invalid_kind",
        custom_error_message="kind must be 'gridlabd' or 'script'",
    ),
]


class PipelineOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "uuid": "0f8e3a1c2b4d4e6f8a9b0c1d2e3f4a5b",
                    "name": "IEEE 13 feeder",
                    "description": "One day of the IEEE 13-node test feeder",
                    "kind": "gridlabd",
                    "docker_image_url": None,
                    "repository_ssh_url": None,
                    "repository_branch": None,
                    "repository_script": None,
                    "model": "ieee13.glm",
                    "arguments": [],
                    "timeout_seconds": 600,
                    "created_at": "2026-11-27T21:07:23.512345Z",
                    "updated_at": "2026-11-27T21:07:23.512345Z",
                }
            ]
        },
    )

    uuid: HexUuid
    name: str
    description: str
    kind: PipelineKind
    docker_image_url: str | None
    repository_ssh_url: str | None
    repository_branch: str | None
    repository_script: str | None
    model: str | None
    arguments: list[str]
    timeout_seconds: int | None
    created_at: datetime
    updated_at: datetime


class PipelineSearch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"uuids": ["0f8e3a1c2b4d4e6f8a9b0c1d2e3f4a5b"]}]},
    )

    uuids: UuidSearch


class PipelineFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    size: int
    sha256: str
    content_type: str
    updated_at: datetime
