"""The dashboard's routes: page shells (no key), htmx fragments (PIPELINES_CLIENT key
in the ``Workflow-API-Key`` header, added by static/app.js) and the static files.

Every HTML answer carries a Content-Security-Policy that admits only this origin's
scripts and styles: the templates hold no inline script or style.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined

from workflow_service.auth.dependencies import ClientApp
from workflow_service.dashboard import graph, views
from workflow_service.db import SessionDep
from workflow_service.errors import NotFound
from workflow_service.runtime import RuntimeDep
from workflow_service.schemas import UuidPath, is_hex_uuid
from workflow_service.storage.s3 import S3Storage

PREFIX = "/ui"
LIVE_TRIGGER = "every 1s"

router = APIRouter(include_in_schema=False)

environment = Environment(
    loader=PackageLoader("workflow_service.dashboard", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=environment)


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


environment.filters["size"] = _size
environment.filters["when"] = _when
environment.globals["is_final"] = views.is_final
environment.globals["live_trigger"] = LIVE_TRIGGER
environment.globals["node_width"] = graph.NODE_WIDTH
environment.globals["node_height"] = graph.NODE_HEIGHT


def _load_static() -> dict[str, tuple[bytes, str, str]]:
    """Every file under static/, read once: name -> (content, content type, etag)."""
    found: dict[str, tuple[bytes, str, str]] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
            elif not item.name.startswith("."):
                content = item.read_bytes()
                kind = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind.endswith("javascript"):
                    kind += "; charset=utf-8"
                etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
                found[prefix + item.name] = (content, kind, etag)

    walk(resources.files("workflow_service.dashboard") / "static", "")
    return found


STATIC = _load_static()


def _connect_sources(request: Request) -> str:
    """Where the pages' scripts may fetch from: this origin, and S3 when artifacts are
    downloaded from presigned URLs there (the plot reads the CSV itself)."""
    sources = ["'self'"]
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None and isinstance(runtime.storage, S3Storage):
        endpoint = request.app.state.settings.s3_endpoint_url
        if endpoint:
            parts = urlsplit(str(endpoint))
            sources.append(f"{parts.scheme}://{parts.netloc}")
        else:
            sources.append("https://*.amazonaws.com")
    return " ".join(sources)


def security_headers(request: Request) -> dict[str, str]:
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {_connect_sources(request)}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _page(*uuids: str) -> None:
    """Pages name resources by uuid in their links: anything else names nothing."""
    if not all(is_hex_uuid(value) for value in uuids):
        raise NotFound("Not found")


def render(request: Request, name: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context)
    response.headers.update(security_headers(request))
    return response


# --- pages: HTML shells, no key needed -------------------------------------------------


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(PREFIX, status_code=307)


@router.get(PREFIX)
async def index_page(request: Request) -> HTMLResponse:
    return render(request, "index.html", page="index")


@router.get(PREFIX + "/pipelines/{pipeline_uuid}")
async def pipeline_page(request: Request, pipeline_uuid: UuidPath) -> HTMLResponse:
    _page(pipeline_uuid)
    return render(request, "pipeline.html", page="pipeline", pipeline_uuid=pipeline_uuid)


@router.get(PREFIX + "/pipelines/{pipeline_uuid}/runs/{run_uuid}")
async def run_page(request: Request, pipeline_uuid: UuidPath, run_uuid: UuidPath) -> HTMLResponse:
    _page(pipeline_uuid, run_uuid)
    return render(request, "run.html", page="run", pipeline_uuid=pipeline_uuid, run_uuid=run_uuid)


@router.get(PREFIX + "/workflows/{workflow_uuid}")
async def workflow_page(request: Request, workflow_uuid: UuidPath) -> HTMLResponse:
    _page(workflow_uuid)
    return render(request, "workflow.html", page="workflow", workflow_uuid=workflow_uuid)


@router.get(PREFIX + "/static/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    found = STATIC.get(path)
    if found is None:
        raise NotFound("No such file")
    content, kind, etag = found
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=kind, headers=headers)


# --- fragments: htmx partials, PIPELINES_CLIENT key --------------------------------------


@router.get(PREFIX + "/fragments/pipelines")
async def pipelines_fragment(request: Request, session: SessionDep, _: ClientApp) -> HTMLResponse:
    return render(request, "fragments/pipelines.html", pipelines=await views.pipelines(session))


@router.get(PREFIX + "/fragments/pipeline-options")
async def pipeline_options_fragment(
    request: Request, session: SessionDep, _: ClientApp
) -> HTMLResponse:
    return render(
        request,
        "fragments/pipeline_options.html",
        pipelines=await views.gridlabd_pipelines(session),
    )


@router.get(PREFIX + "/fragments/workflows")
async def workflows_fragment(request: Request, session: SessionDep, _: ClientApp) -> HTMLResponse:
    return render(request, "fragments/workflows.html", workflows=await views.workflows(session))


@router.get(PREFIX + "/fragments/pipelines/{pipeline_uuid}/runs")
async def runs_fragment(
    request: Request, pipeline_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> HTMLResponse:
    return render(
        request, "fragments/runs.html", view=await views.pipeline_runs(session, pipeline_uuid)
    )


@router.get(PREFIX + "/fragments/pipelines/{pipeline_uuid}/runs/{run_uuid}")
async def run_fragment(
    request: Request,
    pipeline_uuid: UuidPath,
    run_uuid: UuidPath,
    session: SessionDep,
    runtime: RuntimeDep,
    _: ClientApp,
) -> HTMLResponse:
    view = await views.run(session, runtime, pipeline_uuid, run_uuid, str(request.base_url))
    return render(request, "fragments/run.html", view=view)


@router.get(PREFIX + "/fragments/workflows/{workflow_uuid}")
async def workflow_fragment(
    request: Request, workflow_uuid: UuidPath, session: SessionDep, _: ClientApp
) -> HTMLResponse:
    return render(
        request, "fragments/workflow.html", view=await views.workflow(session, workflow_uuid)
    )
