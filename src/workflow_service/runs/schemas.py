"""Request and response models of the runs API (v1 shapes plus the new fields)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from workflow_service.outbound import validate_public_url
from workflow_service.runs.states import RunState
from workflow_service.schemas import FileName, HexUuid, RelativeFileName, Text

MAX_CHUNK_CHARS = 1024 * 1024
_DEFINE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:]*$")


def _public_url(value: str) -> str:
    return validate_public_url(value)


def _defines(value: dict[str, str]) -> dict[str, str]:
    for name, setting in value.items():
        if not _DEFINE_NAME.fullmatch(name) or len(name) > 100:
            raise ValueError(f"define name {name[:100]!r} must match {_DEFINE_NAME.pattern}")
        if len(setting) > 1000 or any(ord(char) < 32 for char in setting):
            raise ValueError(f"define {name}: value must be one line of at most 1000 characters")
    return value


Url = Annotated[Text, StringConstraints(max_length=2000), AfterValidator(_public_url)]
Defines = Annotated[
    dict[Text, Text],
    Field(
        max_length=100,
        description="Passed to the engine as `-D name=value`, after the pipeline's arguments.",
        examples=[{"STOPTIME": "2020-07-01 06:00:00 PDT"}],
    ),
    AfterValidator(_defines),
]


class UrlInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: FileName
    url: Annotated[Url, Field(description="http(s) URL the worker fetches the file from.")]


class RunCreate(BaseModel):
    """A run's inputs as URLs (the original's body). Multipart requests carry files instead."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {"name": "weather.csv", "url": "https://example.com/data/weather.csv"}
                    ],
                    "callback_url": "https://example.com/hooks/runs",
                    "defines": {"STOPTIME": "2020-07-01 06:00:00 PDT"},
                }
            ]
        },
    )

    inputs: list[UrlInput] = []
    callback_url: Annotated[
        Url | None,
        Field(description='Receives POST {"pipeline_run_uuid", "state"} on every state change.'),
    ] = None
    defines: Defines = {}


class InputOut(BaseModel):
    name: str
    url: str | None = Field(description="Where the input was fetched from; null when uploaded.")
    size: int | None
    sha256: str | None


class StateOut(BaseModel):
    state: RunState
    created_at: datetime


class ArtifactOut(BaseModel):
    uuid: HexUuid
    name: str
    url: str = Field(description="Download URL: presigned (S3) or this API's /v1/artifacts/{uuid}.")
    size: int
    sha256: str
    content_type: str


class RunOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "uuid": "5ea9102b2abd498f9830389debb21fb8",
                    "sequence": 1,
                    "created_at": "2026-11-27T21:07:23.512345Z",
                    "inputs": [{"name": "ieee13.glm", "url": None, "size": 6817, "sha256": "…"}],
                    "states": [
                        {"state": "QUEUED", "created_at": "2026-11-27T21:07:23.512345Z"},
                        {"state": "NOT_STARTED", "created_at": "2026-11-27T21:07:23.513345Z"},
                    ],
                    "artifacts": [],
                    "state": "NOT_STARTED",
                    "progress": None,
                    "exit_code": None,
                    "failure_reason": None,
                    "started_at": None,
                    "completed_at": None,
                    "attempt": 0,
                    "callback_url": None,
                    "defines": {},
                }
            ]
        }
    )

    uuid: HexUuid
    sequence: int
    created_at: datetime
    inputs: list[InputOut]
    states: list[StateOut]
    artifacts: list[ArtifactOut]
    state: RunState
    progress: int | None = Field(description="0-100 while running (null when unknown).")
    exit_code: int | None
    failure_reason: str | None
    started_at: datetime | None
    completed_at: datetime | None
    attempt: int = Field(description="How many times a worker started this run.")
    callback_url: str | None
    defines: dict[str, str]


class ConsoleOut(BaseModel):
    std_out: str
    std_err: str
    std_out_size: int = Field(description="Characters received on stdout (truncation aside).")
    std_err_size: int = Field(description="Characters received on stderr (truncation aside).")


class ConsoleReplace(BaseModel):
    """The original's whole-console PUT."""

    model_config = ConfigDict(extra="forbid")

    std_out: Annotated[Text, StringConstraints(max_length=64 * MAX_CHUNK_CHARS)]
    std_err: Annotated[Text, StringConstraints(max_length=64 * MAX_CHUNK_CHARS)]


class ConsoleChunk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offset: int = Field(ge=0, description="Where `data` starts in the stream (characters).")
    data: Annotated[Text, StringConstraints(max_length=MAX_CHUNK_CHARS)]


class ConsoleAppend(BaseModel):
    """The worker's report: console chunks and progress; an empty one is a heartbeat.

    A chunk already received (same offset again) is not added twice.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"std_err": {"offset": 0, "data": "WARNING ...\n"}}]},
    )

    std_out: ConsoleChunk | None = None
    std_err: ConsoleChunk | None = None
    progress: int | None = Field(default=None, ge=0, le=100, description="0-100, when known.")


class StateUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"state": "RUNNING"}, {"state": "FAILED", "exit_code": 2}]},
    )

    state: RunState
    exit_code: int | None = Field(default=None, ge=-255, le=255)
    failure_reason: Annotated[Text, StringConstraints(max_length=2000)] | None = None
    claim: Annotated[
        HexUuid | None,
        Field(
            description=(
                "The worker's token for this execution: set with RUNNING, then a report "
                "from another execution of the same run is refused (400)."
            )
        ),
    ] = None


class RunClaim(BaseModel):
    """A worker takes a NOT_STARTED run: it becomes RUNNING under this claim."""

    model_config = ConfigDict(extra="forbid")

    claim: Annotated[
        HexUuid,
        Field(description="The worker's token for this execution (see StateUpdate.claim)."),
    ]


class ArtifactRegistration(BaseModel):
    """An object the worker uploaded to storage itself, under the run's key prefix."""

    model_config = ConfigDict(extra="forbid")

    name: RelativeFileName
    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    size: int = Field(ge=0)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    content_type: Annotated[Text, StringConstraints(min_length=1, max_length=255)]


class JobInput(BaseModel):
    name: str
    url: str | None
    key: str | None


class JobFile(BaseModel):
    name: str
    key: str


class Job(BaseModel):
    """Everything a worker needs to execute a run."""

    pipeline_uuid: HexUuid
    run_uuid: HexUuid
    kind: str
    model: str | None
    arguments: list[str]
    defines: dict[str, str]
    timeout_seconds: int
    files: list[JobFile]
    inputs: list[JobInput]
    artifact_prefix: str
    std_out_size: int = Field(description="Console received so far: a retry appends after it.")
    std_err_size: int
    docker_image_url: str | None
    repository_ssh_url: str | None
    repository_branch: str | None
    repository_script: str | None
