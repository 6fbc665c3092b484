"""Configuration from environment variables.

Every setting is read from the variable of its own name; the 2020 OpenFIDO
Workflow Service's names keep working as aliases (``SQLALCHEMY_DATABASE_URI``,
``CELERY_BROKER_URL``), so an existing deployment's environment moves over
unchanged.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

    database_url: Annotated[
        str,
        Field(
            validation_alias=AliasChoices("DATABASE_URL", "SQLALCHEMY_DATABASE_URI"),
            description="SQLAlchemy URL of the database (sqlite+aiosqlite or postgresql+asyncpg).",
        ),
    ] = "sqlite+aiosqlite:///./workflow-service.db"
    redis_url: Annotated[
        str | None,
        Field(
            validation_alias=AliasChoices("REDIS_URL", "CELERY_BROKER_URL"),
            description="Redis for the arq queue; unset means in-process execution.",
        ),
    ] = None
    s3_access_key_id: Annotated[
        str | None,
        Field(
            validation_alias="S3_ACCESS_KEY_ID",
            description="Access key of the S3-compatible object storage.",
        ),
    ] = None
    s3_secret_access_key: Annotated[
        str | None,
        Field(
            validation_alias="S3_SECRET_ACCESS_KEY",
            description="Secret key of the S3-compatible object storage.",
        ),
    ] = None
    s3_endpoint_url: Annotated[
        str | None,
        Field(
            validation_alias="S3_ENDPOINT_URL",
            description="Endpoint of the S3-compatible storage (MinIO, moto…); unset: AWS.",
        ),
    ] = None
    s3_region_name: Annotated[
        str, Field(validation_alias="S3_REGION_NAME", description="Region of the S3 bucket.")
    ] = "us-east-1"
    s3_bucket: Annotated[
        str,
        Field(
            validation_alias="S3_BUCKET",
            description="Bucket for artifacts and uploads; created at start when missing.",
            min_length=3,
        ),
    ] = "workflow-service"
    s3_presigned_timeout: Annotated[
        int,
        Field(
            validation_alias="S3_PRESIGNED_TIMEOUT",
            description="Lifetime of presigned artifact download URLs, in seconds.",
            ge=1,
            le=604800,
        ),
    ] = 604800
    worker_api_server: Annotated[
        str | None,
        Field(
            validation_alias="WORKER_API_SERVER",
            description="For `workflow-service worker`: the API it reports to.",
        ),
    ] = None
    worker_api_token: Annotated[
        str | None,
        Field(
            validation_alias="WORKER_API_TOKEN",
            description="For `workflow-service worker`: its PIPELINES_WORKER key.",
        ),
    ] = None
    max_content_length: Annotated[
        int,
        Field(
            validation_alias="MAX_CONTENT_LENGTH",
            ge=1024,
            description="Largest request body in bytes; larger ones are refused with 413.",
        ),
    ] = GIB
    storage_url: Annotated[
        str | None,
        Field(
            validation_alias="STORAGE_URL",
            description=(
                "Where artifacts and uploaded files live: `s3://BUCKET` or a local folder "
                "(`file:///abs/path` or a plain path). Unset: S3 when S3_ENDPOINT_URL or "
                "S3_ACCESS_KEY_ID is set, else ./artifacts."
            ),
        ),
    ] = None
    gridlabd_bin: Annotated[
        str | None,
        Field(
            validation_alias="GRIDLABD_BIN",
            description=(
                "The engine command (split like a shell would, never run by a shell). "
                "Unset: this package's front end on the gridlabd bindings."
            ),
        ),
    ] = None
    container_runtime: Annotated[
        Literal["docker", "podman"] | None,
        Field(
            validation_alias="CONTAINER_RUNTIME",
            description="Run script pipelines inside their docker_image_url with this runtime.",
        ),
    ] = None
    git_ssh_command: Annotated[
        str,
        Field(
            validation_alias="GIT_SSH_COMMAND",
            description="The ssh command git uses to clone ssh:// and user@host: repositories.",
        ),
    ] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes"
    ssh_known_hosts_file: Annotated[
        Path | None,
        Field(
            validation_alias="SSH_KNOWN_HOSTS_FILE",
            description="known_hosts for cloning over ssh (default: the user's own).",
        ),
    ] = None
    run_timeout_seconds: Annotated[
        int,
        Field(
            validation_alias="RUN_TIMEOUT_SECONDS",
            description="A run's time limit when its pipeline sets no `timeout_seconds`.",
            ge=1,
            le=7 * 24 * 3600,
        ),
    ] = 3600
    run_max_cpu_seconds: Annotated[
        int | None,
        Field(
            validation_alias="RUN_MAX_CPU_SECONDS",
            description="CPU-time limit of the engine process (unset: none).",
            ge=1,
        ),
    ] = None
    run_max_memory_bytes: Annotated[
        int | None,
        Field(
            validation_alias="RUN_MAX_MEMORY_BYTES",
            description="Address-space limit of the engine process.",
            ge=64 * 1024**2,
        ),
    ] = 8 * GIB
    run_max_file_bytes: Annotated[
        int,
        Field(
            validation_alias="RUN_MAX_FILE_BYTES",
            description="Largest single file the engine may write.",
            ge=1024**2,
        ),
    ] = 4 * GIB
    run_max_output_bytes: Annotated[
        int,
        Field(
            validation_alias="RUN_MAX_OUTPUT_BYTES",
            ge=1024,
            description="Largest total size of a run's working folder; over it the run fails.",
        ),
    ] = 10 * GIB
    run_work_dir: Annotated[
        Path | None,
        Field(
            validation_alias="RUN_WORK_DIR",
            description="Where runs get their working directories (default: the system's temp).",
        ),
    ] = None
    run_sandbox: Annotated[
        Literal["auto", "bwrap", "none"],
        Field(
            validation_alias="RUN_SANDBOX",
            description=(
                "Confine the engine and host-mode scripts with bubblewrap: `auto` when bwrap "
                "works here, `bwrap` required, `none` off (docs/sandbox.md)."
            ),
        ),
    ] = "auto"
    worker_concurrency: Annotated[
        int,
        Field(
            validation_alias="WORKER_CONCURRENCY",
            description="Runs at once per worker (or in the embedded API).",
            ge=1,
        ),
    ] = 2
    worker_shutdown_grace_seconds: Annotated[
        int,
        Field(
            validation_alias="WORKER_SHUTDOWN_GRACE_SECONDS",
            ge=0,
            description=(
                "On SIGTERM a worker takes no new run and lets its runs finish this long; "
                "the runs still going are then handed back to other workers."
            ),
        ),
    ] = 30
    heartbeat_seconds: Annotated[
        float,
        Field(
            validation_alias="HEARTBEAT_SECONDS",
            description="A running run reports at least this often, console or not.",
            gt=0,
            le=60,
        ),
    ] = 5.0
    heartbeat_timeout_seconds: Annotated[
        float,
        Field(
            validation_alias="HEARTBEAT_TIMEOUT_SECONDS",
            gt=0,
            description="A RUNNING run silent this long has lost its worker: retried or FAILED.",
        ),
    ] = 60.0
    storage_retry_seconds: Annotated[
        float,
        Field(
            validation_alias="STORAGE_RETRY_SECONDS",
            gt=0,
            description="How long a worker retries an artifact upload while storage is down.",
        ),
    ] = 60.0
    run_max_attempts: Annotated[
        int,
        Field(
            validation_alias="RUN_MAX_ATTEMPTS",
            description="Starts of a run before a lost worker fails it.",
            ge=1,
            le=10,
        ),
    ] = 2
    reconcile_seconds: Annotated[
        float,
        Field(
            validation_alias="RECONCILE_SECONDS",
            description=(
                "How often the API re-enqueues waiting runs, recovers lost ones and "
                "advances workflows."
            ),
            gt=0,
            le=600,
        ),
    ] = 10.0
    queue_poll_seconds: Annotated[
        float,
        Field(
            validation_alias="QUEUE_POLL_SECONDS",
            description=(
                "How often an idle arq worker looks for jobs (arq's own 0.5 s adds that "
                "much latency)."
            ),
            gt=0,
            le=5,
        ),
    ] = 0.05
    input_url_allow_private: Annotated[
        bool,
        Field(
            validation_alias="INPUT_URL_ALLOW_PRIVATE",
            description="Let URL inputs reach loopback, private, link-local, metadata addresses.",
        ),
    ] = False
    callback_url_allow_private: Annotated[
        bool,
        Field(
            validation_alias="CALLBACK_URL_ALLOW_PRIVATE",
            description="Let `callback_url` reach private addresses (as INPUT_URL_ALLOW_PRIVATE).",
        ),
    ] = False
    input_max_bytes: Annotated[
        int,
        Field(
            validation_alias="INPUT_MAX_BYTES",
            description="Largest input file (URL or upload).",
            ge=1,
        ),
    ] = GIB
    max_inputs_per_run: Annotated[
        int,
        Field(
            validation_alias="MAX_INPUTS_PER_RUN",
            description="Most inputs (files and URLs) one run may have.",
            ge=1,
        ),
    ] = 100
    max_console_bytes: Annotated[
        int,
        Field(
            validation_alias="MAX_CONSOLE_BYTES",
            description="Per console stream; beyond it the head and the tail are kept.",
            ge=1024,
        ),
    ] = 1024**2
    webhook_secret: Annotated[
        str | None,
        Field(
            validation_alias="WEBHOOK_SECRET",
            description="Standard Webhooks signing secret (`whsec_` + base64); unset: unsigned.",
        ),
    ] = None
    host: Annotated[
        str, Field(validation_alias="HOST", description="Where `serve` listens.", min_length=1)
    ] = "127.0.0.1"
    port: Annotated[
        int,
        Field(validation_alias="PORT", description="The port `serve` listens on.", ge=0, le=65535),
    ] = 8000
    web_concurrency: Annotated[
        int,
        Field(
            validation_alias="WEB_CONCURRENCY",
            ge=1,
            le=64,
            description=(
                "API processes `serve` starts (uvicorn workers). Above 1 needs REDIS_URL: "
                "in-process execution belongs to a single process."
            ),
        ),
    ] = 1
    access_log: Annotated[
        bool,
        Field(
            validation_alias="ACCESS_LOG",
            description="uvicorn's access log (it costs CPU per request).",
        ),
    ] = True
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        Field(validation_alias="LOG_LEVEL", description="`debug`, `info`, `warning` or `error`."),
    ] = "info"
    log_format: Annotated[
        Literal["text", "json"],
        Field(
            validation_alias="LOG_FORMAT",
            description=(
                "`text` for people, or `json`: one JSON object a line (timestamp, level, "
                "logger, event, request_id, run_uuid…) for log collectors."
            ),
        ),
    ] = "text"
    metrics_enabled: Annotated[
        bool,
        Field(
            validation_alias="METRICS_ENABLED",
            description="Serve Prometheus metrics on `/metrics` (no key needed).",
        ),
    ] = True
    database_pool_size: Annotated[
        int,
        Field(
            validation_alias="DATABASE_POOL_SIZE",
            description="PostgreSQL connections per API process (as many again may overflow).",
            ge=1,
        ),
    ] = 20
    credentials_file: Annotated[
        Path,
        Field(
            validation_alias="CREDENTIALS_FILE",
            description="Where `serve` writes the first client key and the CLI reads it.",
        ),
    ] = Path(".workflow-service/credentials.json")

    @field_validator("log_level", "log_format", "container_runtime", mode="before")
    @classmethod
    def _normalise_choice(cls, value: object) -> object:
        if value == "":
            return None
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            # The original's SQLALCHEMY_DATABASE_URI names no driver: use the async one.
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql+asyncpg:// or sqlite+aiosqlite:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "must be a redis://, rediss:// or unix:// URL (only Redis is supported)"
            )
        return value or None

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ValueError("must be whsec_ followed by base64 (Standard Webhooks)") from None
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _variable_names(field: str) -> list[str]:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [alias if isinstance(alias, str) else field.upper()]


def _named(location: str) -> str:
    """The environment variable behind an error location (field name or alias)."""
    for field in Settings.model_fields:
        names = _variable_names(field)
        if location == field or location in names:
            present = [name for name in names if name.upper() in map(str.upper, os.environ)]
            return present[0] if present else names[0]
    return location.upper()


def load_settings() -> Settings:
    """Read the environment; a bad value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = _named(str(error["loc"][0])) if error["loc"] else "settings"
        raise SettingsError(f"invalid setting {name}: {error['msg']}") from None


def _shown_default(field: str) -> str:
    info = Settings.model_fields[field]
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and (field.endswith("_bytes") or field == "max_content_length"):
        for unit, size in (("GiB", GIB), ("MiB", 1024**2)):
            if value % size == 0:
                return f"`{value}` ({value // size} {unit})"
    return f"`{value}`"


def reference_markdown() -> str:
    """docs/configuration-reference.md, generated from this class (`make docs`)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/workflow_service/settings.py` by `make docs`; do not edit.",
        "Every setting is an environment variable; a second name is the 2020 service's.",
        "How they are read: [configuration.md](configuration.md).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for field, info in Settings.model_fields.items():
        names = " or ".join(f"`{name}`" for name in _variable_names(field))
        description = (info.description or "").replace("|", "\\|")
        lines.append(f"| {names} | {_shown_default(field)} | {description} |")
    return "\n".join(lines) + "\n"
