"""The `workflow-service` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workflow_service.auth.scheme import Permission
from workflow_service.client import Client, ClientError, connection
from workflow_service.credentials import write_credentials
from workflow_service.settings import Settings, SettingsError, load_settings

# The client commands must start fast: the database, web and logging stacks are
# imported by the server commands that use them.
if TYPE_CHECKING:
    from workflow_service import db

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
    """LOG_FORMAT text or json, through structlog, for our loggers, uvicorn's and arq's
    (``serve`` hands the same configuration to uvicorn: ``log_config``)."""
    from workflow_service import logs

    logs.configure(settings)


def _with_database(settings: Settings, work: Callable[[db.Database], Awaitable[T]]) -> T:
    """Run ``work`` on a database brought to (or checked at) the migrations' head."""
    from workflow_service import db

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
    import uvicorn

    from workflow_service import logs
    from workflow_service.auth import service as auth_service

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
        log_config=logs.logging_config(settings),
        log_level=settings.log_level,
        proxy_headers=False,
    )


@cli.command()
def migrate() -> None:
    """Upgrade the database to the latest schema."""
    from workflow_service import db

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
    from workflow_service.auth import service as auth_service

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
    from workflow_service.auth import service as auth_service
    from workflow_service.pagination import Page

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
    from workflow_service.auth import service as auth_service
    from workflow_service.errors import NotFound

    settings = _settings()

    async def work(database: db.Database) -> None:
        async with database.sessions() as session:
            await auth_service.revoke_application(session, uuid)

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


# -- API client commands ----------------------------------------------------------------------
# Exit codes (docs/cli.md): 0 done (a run COMPLETED); 1 a run ended FAILED or CANCELLED;
# 2 usage, input, API (4xx/5xx) or connection errors; 130 interrupted.

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server", help="API URL (default: WORKFLOW_SERVER, then the URL `serve` saved)."
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="API key (default: WORKFLOW_API_KEY, then the key `serve` saved)."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON only, for scripts (errors go to stderr).")
]
DefineOption = Annotated[
    list[str] | None,
    typer.Option("--define", "-D", help="name=value for the engine; repeat as needed."),
]
PipelineArgument = Annotated[str, typer.Argument(help="The pipeline's uuid or name.")]
RunArgument = Annotated[str, typer.Argument(help="The run's uuid, or `last` for the latest.")]
WorkflowArgument = Annotated[str, typer.Argument(help="The workflow's uuid or name.")]


def _defines(items: list[str] | None) -> dict[str, str]:
    defines = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(f"-D takes name=value, not {item!r}")
        defines[name] = value
    return defines


@contextmanager
def _api(server: str | None, key: str | None) -> Iterator[Client]:
    """The API client; its errors (and unreadable files) become one message and exit 2."""
    try:
        url, api_key = connection(server, key, _settings().credentials_file)
        with Client(url, api_key) as api:
            yield api
    except ClientError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(str(exc)) from None


def _interrupted(hint: str = "") -> typer.Exit:
    typer.echo(f"interrupted{hint}", err=True)
    return typer.Exit(code=130)


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _stdout() -> Console:
    """Tables: the terminal's width, or wide enough not to cut uuids in a pipe."""
    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:
        console = Console(highlight=False, emoji=False, width=240)
    return console


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else ""


def _table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(
        title=escape(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for column in columns:
        table.add_column(column, no_wrap=column in {"uuid", "sha256"})
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    _stdout().print(table)


def _fields(title: str, items: list[tuple[str, object]]) -> None:
    table = Table(
        title=escape(title), title_justify="left", box=None, show_header=False, pad_edge=False
    )
    table.add_column(style="bold")
    table.add_column()
    for name, value in items:
        if value not in (None, "", [], {}):
            table.add_row(name, escape(str(value)))
    _stdout().print(table)


@cli.command()
def submit(
    path: Annotated[Path, typer.Argument(help="A .glm model, or a folder holding one.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="More files the model reads.", show_default=False)
    ] = None,
    define: DefineOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    download: Annotated[
        Path | None, typer.Option("--download", help="Folder for the artifacts (implies --wait).")
    ] = None,
    follow: Annotated[
        bool | None,
        typer.Option(
            "--follow/--no-follow",
            "-f",
            help="Show the engine's messages while waiting "
            "(default: yes unless stderr is a terminal, where a progress bar shows).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Run a model on a server: exits 0 when the run completed, 1 when it did not."""
    from workflow_service import submit as submitting

    defines = _defines(define)
    status = None if as_json else submitting.status_console()
    with _api(server, key) as api:
        try:
            result = submitting.submit(
                api,
                path,
                list(files or []),
                defines,
                wait=wait,
                download_to=download,
                status=status,
                show_console=follow,
            )
        except KeyboardInterrupt:
            hint = "; the run goes on: `workflow-service runs logs PIPELINE RUN -f` follows it"
            raise _interrupted(hint) from None
    if as_json:
        _print_json(result.as_json())
    elif not wait and download is None:
        typer.echo(result.run["uuid"])
    raise typer.Exit(result.code)


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


# -- pipelines ----------------------------------------------------------------------------------

pipelines_cli = typer.Typer(help="List, create and delete pipelines.", no_args_is_help=True)
cli.add_typer(pipelines_cli, name="pipelines")


def _pipeline_rows(pipelines: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            p["uuid"],
            p["kind"],
            p["name"],
            p.get("model") or p.get("docker_image_url") or "",
            _when(p["created_at"]),
            p.get("description") or "",
        ]
        for p in pipelines
    ]


@pipelines_cli.command("list")
def pipelines_list(
    as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """List the pipelines, oldest first."""
    with _api(server, key) as api:
        pipelines = api.pipelines()
    if as_json:
        _print_json(pipelines)
        return
    columns = ["uuid", "kind", "name", "model / image", "created (UTC)", "description"]
    _table(None, columns, _pipeline_rows(pipelines))


@pipelines_cli.command("show")
def pipelines_show(
    pipeline: PipelineArgument,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show a pipeline and its files."""
    with _api(server, key) as api:
        found = api.pipeline(pipeline)
        found["files"] = api.pipeline_files(found["uuid"])
    if as_json:
        _print_json(found)
        return
    skip = {"files", "arguments"}
    items = [(name, value) for name, value in found.items() if name not in skip]
    items.append(("arguments", " ".join(found.get("arguments") or [])))
    _fields(f"pipeline {found['name']}", items)
    if found["files"]:
        rows = [[f["name"], str(f.get("size", "")), f.get("sha256") or ""] for f in found["files"]]
        _table("files", ["name", "size", "sha256"], rows)


@pipelines_cli.command("create")
def pipelines_create(
    name: Annotated[str, typer.Argument(help="1 to 50 characters.")],
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Pipeline files: the model and what it reads.", show_default=False),
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    model: Annotated[
        str | None, typer.Option(help="The .glm to run (default: the only one there).")
    ] = None,
    argument: Annotated[
        list[str] | None,
        typer.Option("--argument", "-a", help="An engine argument; repeat as needed."),
    ] = None,
    timeout: Annotated[int | None, typer.Option(help="Run timeout in seconds.")] = None,
    docker_image: Annotated[
        str | None, typer.Option(help="Makes an OpenFIDO `script` pipeline: its image.")
    ] = None,
    repository: Annotated[str | None, typer.Option(help="`script` pipeline: repository.")] = None,
    branch: Annotated[str | None, typer.Option(help="`script` pipeline: branch.")] = None,
    script: Annotated[str | None, typer.Option(help="`script` pipeline: script.")] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Create a pipeline (`gridlabd`, or `script` with --docker-image) and upload its files."""
    body: dict[str, Any] = {"name": name, "description": description}
    if docker_image or repository:
        body.update(docker_image_url=docker_image, repository_ssh_url=repository)
        body.update(
            {k: v for k, v in [("repository_branch", branch), ("repository_script", script)] if v}
        )
        if files or model or argument or timeout:
            raise _fail("a script pipeline takes no files, --model, --argument or --timeout")
    else:
        if branch or script:
            raise _fail("--branch and --script need --docker-image and --repository")
        body.update(kind="gridlabd", arguments=list(argument or []))
        if model:
            body["model"] = model
        if timeout is not None:
            body["timeout_seconds"] = timeout
    with _api(server, key) as api:
        created = api.create_pipeline(body)
        if files:
            try:
                created["files"] = api.add_pipeline_files(created["uuid"], list(files))
            except ClientError:
                api.delete_pipeline(created["uuid"])
                raise
    if as_json:
        _print_json(created)
        return
    count = len(created.get("files", []))
    typer.echo(f"created {created['kind']} pipeline {name!r} with {count} file(s)", err=True)
    typer.echo(created["uuid"])


@pipelines_cli.command("delete")
def pipelines_delete(
    pipelines: Annotated[list[str], typer.Argument(help="Uuids or names.")],
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Delete pipelines (soft: their runs stay)."""
    with _api(server, key) as api:
        for reference in pipelines:
            found = api.pipeline(reference)
            api.delete_pipeline(found["uuid"])
            typer.echo(f"deleted {found['uuid']} ({found['name']})")


# -- runs ---------------------------------------------------------------------------------------

runs_cli = typer.Typer(
    help="List, inspect, follow, cancel and download a pipeline's runs.", no_args_is_help=True
)
cli.add_typer(runs_cli, name="runs")


def _find_run(api: Client, pipeline: str, run: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = api.pipeline(pipeline)
    if run == "last":
        runs = api.runs(found["uuid"])
        if not runs:
            raise ClientError(f"pipeline {found['name']!r} has no runs")
        return found, runs[-1]
    return found, api.run(found["uuid"], run)


def _run_row(run: dict[str, Any]) -> list[str]:
    progress = "" if run.get("progress") is None else f"{run['progress']}%"
    exit_code = "" if run.get("exit_code") is None else str(run["exit_code"])
    return [
        run["uuid"],
        run["state"],
        progress,
        exit_code,
        _when(run["created_at"]),
        _when(run.get("completed_at")),
        str(len(run["artifacts"])),
    ]


@runs_cli.command("list")
def runs_list(
    pipeline: PipelineArgument,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """List a pipeline's runs, oldest first."""
    with _api(server, key) as api:
        found = api.pipeline(pipeline)
        runs = api.runs(found["uuid"])
    if as_json:
        _print_json(runs)
        return
    columns = ["uuid", "state", "progress", "exit", "created (UTC)", "ended (UTC)", "artifacts"]
    _table(f"runs of {found['name']}", columns, [_run_row(run) for run in runs])


@runs_cli.command("show")
def runs_show(
    pipeline: PipelineArgument,
    run: RunArgument,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Show a run: state, times, inputs and artifacts."""
    with _api(server, key) as api:
        found, shown = _find_run(api, pipeline, run)
    if as_json:
        _print_json(shown)
        return
    progress = None if shown.get("progress") is None else f"{shown['progress']}%"
    _fields(
        f"run {shown['uuid']} of {found['name']}",
        [
            ("state", shown["state"]),
            ("progress", progress),
            ("exit code", shown.get("exit_code")),
            ("failure", shown.get("failure_reason")),
            ("attempt", shown.get("attempt")),
            ("created", _when(shown["created_at"])),
            ("started", _when(shown.get("started_at"))),
            ("ended", _when(shown.get("completed_at"))),
            ("defines", " ".join(f"{k}={v}" for k, v in shown.get("defines", {}).items())),
            ("states", " → ".join(s["state"] for s in shown["states"])),
        ],
    )
    if shown["inputs"]:
        rows = [[i["name"], str(i.get("size") or ""), i.get("url") or ""] for i in shown["inputs"]]
        _table("inputs", ["name", "size", "url"], rows)
    if shown["artifacts"]:
        rows = [[a["name"], str(a["size"]), a["sha256"]] for a in shown["artifacts"]]
        _table("artifacts", ["name", "size", "sha256"], rows)


@runs_cli.command("logs")
def runs_logs(
    pipeline: PipelineArgument,
    run: RunArgument,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Stream the console live until the run ends; exit 1 unless it completed.",
        ),
    ] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Print a run's console (the engine's stdout, then its stderr)."""
    from workflow_service import submit as submitting

    with _api(server, key) as api:
        found, shown = _find_run(api, pipeline, run)
        if not follow:
            console = api.console(found["uuid"], shown["uuid"])
            for text in (console["std_out"], console["std_err"]):
                if text:
                    sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return
        try:
            ended = submitting.follow(
                api, found["uuid"], shown["uuid"], status=None, show_console=True, lines=sys.stdout
            )
        except KeyboardInterrupt:
            raise _interrupted() from None
    if ended["state"] != "COMPLETED":
        typer.echo(f"run {ended['state']}: {ended.get('failure_reason') or ''}", err=True)
        raise typer.Exit(1)


@runs_cli.command("cancel")
def runs_cancel(
    pipeline: PipelineArgument,
    run: RunArgument,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a run (a running engine is stopped; cancelling twice is fine)."""
    with _api(server, key) as api:
        found, shown = _find_run(api, pipeline, run)
        cancelled = api.cancel_run(found["uuid"], shown["uuid"])
    if as_json:
        _print_json(cancelled)
    else:
        typer.echo(f"run {cancelled['uuid']} {cancelled['state']}")


@runs_cli.command("download")
def runs_download(
    pipeline: PipelineArgument,
    run: RunArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder.")] = Path(),
    name: Annotated[
        list[str] | None,
        typer.Option("--name", "-n", help="Only this artifact; repeat as needed."),
    ] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Download a run's artifacts (sha256-checked), keeping their relative names."""
    from workflow_service import submit as submitting

    with _api(server, key) as api:
        _, shown = _find_run(api, pipeline, run)
        saved = submitting.download(api, shown, output, list(name or []))
    if as_json:
        _print_json([str(path) for path in saved])
        return
    for path in saved:
        typer.echo(str(path))
    if not saved:
        typer.echo(f"run {shown['uuid']} ({shown['state']}) has no artifacts", err=True)


# -- workflows ----------------------------------------------------------------------------------

workflows_cli = typer.Typer(help="List and run workflows.", no_args_is_help=True)
cli.add_typer(workflows_cli, name="workflows")


@workflows_cli.command("list")
def workflows_list(
    as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """List the workflows, oldest first."""
    with _api(server, key) as api:
        workflows = api.workflows()
    if as_json:
        _print_json(workflows)
        return
    rows = [[w["uuid"], w["name"], _when(w["created_at"]), w["description"]] for w in workflows]
    _table(None, ["uuid", "name", "created (UTC)", "description"], rows)


@workflows_cli.command("run")
def workflows_run(
    workflow: WorkflowArgument,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Input files of the first stages.", show_default=False),
    ] = None,
    define: DefineOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow it to its end; exit 1 unless it completed.")
    ] = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Run a workflow: one run per stage, each stage fed the artifacts of those before it."""
    from workflow_service import submit as submitting

    defines = _defines(define)
    status = None if as_json else submitting.status_console()
    with _api(server, key) as api:
        found = api.workflow(workflow)
        started = api.start_workflow_run(found["uuid"], list(files or []), defines)
        if status is not None:
            status.print(f"workflow run {started['uuid']} of {found['name']}", markup=False)
        if not wait:
            _print_json(started) if as_json else typer.echo(started["uuid"])
            return
        names = {p["uuid"]: p["name"] for p in api.pipelines()}

        def changed(stage: str, state: str) -> None:
            if status is not None:
                status.print(f"{stage}: {state}", markup=False)

        try:
            ended = submitting.wait_workflow_run(
                api, found["uuid"], started["uuid"], changed, names
            )
        except KeyboardInterrupt:
            raise _interrupted("; the workflow run goes on") from None
    if as_json:
        _print_json(ended)
    elif status is not None:
        rows = [
            [
                names.get(stage["pipeline_uuid"], stage["pipeline_uuid"]),
                stage["pipeline_uuid"],
                stage["pipeline_run"]["uuid"],
                stage["pipeline_run"]["state"],
                ", ".join(a["name"] for a in stage["pipeline_run"]["artifacts"]),
            ]
            for stage in ended["workflow_pipeline_runs"]
        ]
        _table(
            f"workflow run {ended['uuid']}: {ended['state']}",
            ["stage", "pipeline", "run", "state", "artifacts"],
            rows,
        )
    raise typer.Exit(0 if ended["state"] == "COMPLETED" else 1)


def main() -> None:
    cli()
