"""The `workflow-service` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
import uvicorn

from workflow_service import db
from workflow_service.auth import service as auth_service
from workflow_service.auth.models import Permission
from workflow_service.credentials import write_credentials
from workflow_service.pagination import Page
from workflow_service.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    name="workflow-service",
    help="Runs GridLAB-D simulations for other applications and keeps their results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per worker → API call is noise at info level.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _with_database(settings: Settings, work: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``work`` on a database brought to (or checked at) the migrations' head."""

    async def main() -> T:
        database = db.create_database(settings)
        try:
            await db.prepare_schema(database, settings)
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except db.SchemaNotCurrent as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot reach the database ({settings.database_url}): {exc}") from None


@cli.command()
def serve() -> None:
    """Serve the API (no configuration: SQLite file in the working directory)."""
    settings = _settings()
    _configure_logging(settings)
    if settings.web_concurrency > 1 and not settings.redis_url:
        raise _fail("WEB_CONCURRENCY above 1 needs REDIS_URL (runs then go to arq workers)")

    async def bootstrap(database: db.Database) -> str | None:
        async with database.sessions() as session:
            if await auth_service.any_application(session):
                return None
            _, key = await auth_service.create_application(
                session, "first client", [Permission.PIPELINES_CLIENT]
            )
            return key

    key = _with_database(settings, bootstrap)
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else settings.host  # noqa: S104
    server = f"http://{host}:{settings.port}"
    if key is not None:
        path = write_credentials(settings.credentials_file, server, key)
        typer.echo("No API key existed: created a PIPELINES_CLIENT key (shown once):")
        typer.echo(f"API_TOKEN={key}")
        typer.echo(f"Saved for the command line in {path} (mode 0600).")
    typer.echo(f"Serving on {server}  (API explorer: {server}/docs)")

    from workflow_service.app import create_app

    # Several processes each build their app from the environment (uvicorn imports it).
    several = settings.web_concurrency > 1
    uvicorn.run(
        "workflow_service.app:create_app" if several else create_app(settings),
        factory=several,
        workers=settings.web_concurrency,
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level=settings.log_level,
        proxy_headers=False,
    )


@cli.command()
def migrate() -> None:
    """Upgrade the database to the latest schema."""
    settings = _settings()

    async def work() -> None:
        database = db.create_database(settings)
        try:
            await db.upgrade(database, settings.database_url)
        finally:
            await database.dispose()

    asyncio.run(work())
    typer.echo("database is at the latest revision")


@cli.command(name="create-application-key")
def create_application_key(
    name: Annotated[str, typer.Option("--name", "-n", help="Who the key is for.")],
    permission: Annotated[
        list[Permission],
        typer.Option("--permission", "-p", help="Repeat for several permissions."),
    ],
) -> None:
    """Create an API key and print `API_TOKEN=<key>` (the original's output)."""
    if not name.strip() or len(name) > 100:
        raise _fail("the name must be 1 to 100 characters")
    settings = _settings()

    async def work(database: db.Database) -> str:
        async with database.sessions() as session:
            _, key = await auth_service.create_application(session, name, permission)
            return key

    typer.echo(f"API_TOKEN={_with_database(settings, work)}")


@cli.command(name="list-application-keys")
def list_application_keys() -> None:
    """List live keys: uuid, key prefix, permissions, name (never the keys)."""
    settings = _settings()

    async def work(database: db.Database) -> list[tuple[str, str, str, str]]:
        async with database.sessions() as session:
            rows = await auth_service.list_applications(session, Page(limit=None, after_id=None))
            return [(a.uuid, a.key_prefix, ",".join(a.permissions), a.name) for a in rows]

    for row in _with_database(settings, work):
        typer.echo("\t".join(row))


@cli.command(name="revoke-application-key")
def revoke_application_key(
    uuid: Annotated[
        str, typer.Argument(help="The application's uuid (see list-application-keys).")
    ],
) -> None:
    """Revoke a key: it stops working at once."""
    settings = _settings()

    async def work(database: db.Database) -> None:
        async with database.sessions() as session:
            await auth_service.revoke_application(session, uuid)

    from workflow_service.errors import NotFound

    try:
        _with_database(settings, work)
    except NotFound:
        raise _fail(f"no live application key with uuid {uuid}") from None
    typer.echo(f"revoked {uuid}")


@cli.command()
def worker() -> None:
    """Run an arq worker: executes runs from REDIS_URL for the API at WORKER_API_SERVER."""
    settings = _settings()
    _configure_logging(settings)
    from workflow_service.worker.jobs import arq_worker

    try:
        runner = arq_worker(settings)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    runner.run()


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def gridlabd(context: typer.Context) -> None:
    """The engine front end: `gridlabd [-D name=value]... model.glm` (see --help)."""
    command = [sys.executable, "-m", "workflow_service.engine", *context.args]
    os.execv(sys.executable, command)  # noqa: S606 - fixed interpreter, the user's own arguments


@cli.command()
def submit(
    path: Annotated[Path, typer.Argument(help="A .glm model, or a folder holding one.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="More files the model reads.", show_default=False)
    ] = None,
    define: Annotated[
        list[str] | None,
        typer.Option("--define", "-D", help="name=value for the engine; repeat as needed."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    download: Annotated[
        Path | None, typer.Option("--download", help="Folder for the artifacts (implies --wait).")
    ] = None,
    server: Annotated[str | None, typer.Option(help="API URL (default: WORKFLOW_SERVER).")] = None,
    key: Annotated[str | None, typer.Option(help="API key (default: WORKFLOW_API_KEY).")] = None,
) -> None:
    """Run a model on a server: exits 0 when the run completed, 1 when it did not."""
    from workflow_service import submit as submitting

    defines = {}
    for item in define or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(f"-D takes name=value, not {item!r}")
        defines[name] = value
    try:
        url, api_key = submitting.connection(server, key, _settings().credentials_file)
        code = submitting.submit(
            path,
            list(files or []),
            defines,
            server=url,
            key=api_key,
            wait=wait,
            download_to=download,
        )
    except (submitting.SubmitError, httpx.HTTPError, OSError) as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@cli.command(name="run-local")
def run_local(
    repository: Annotated[str, typer.Option(help="The pipeline's repository URL.")],
    input_dir: Annotated[Path, typer.Option(help="Folder of input files.")],
    output_dir: Annotated[Path, typer.Option(help="Where the output files are copied.")],
    branch: Annotated[str, typer.Option(help="Branch to clone.")] = "master",
    script: Annotated[str, typer.Option(help="Script inside the repository.")] = "openfido.sh",
    image: Annotated[str | None, typer.Option(help="Image, when CONTAINER_RUNTIME is set.")] = None,
) -> None:
    """Run an OpenFIDO script pipeline here, exactly as a worker would, without a server."""
    from workflow_service.worker.local import run_script_locally

    settings = _settings()
    if not input_dir.is_dir():
        raise _fail(f"--input-dir {input_dir} is not a folder")
    code = asyncio.run(
        run_script_locally(settings, repository, branch, script, image, input_dir, output_dir)
    )
    raise typer.Exit(code)


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document (JSON)."""
    from workflow_service.app import create_app

    document = create_app(_settings()).openapi()
    json.dump(document, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def main() -> None:
    cli()
