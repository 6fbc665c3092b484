"""The FastAPI application: routers, error handlers, body limit, OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_service import __version__, health, metrics
from workflow_service.auth.router import router as applications_router
from workflow_service.auth.service import replace_embedded_worker_key
from workflow_service.dashboard.router import router as dashboard_router
from workflow_service.db import Database, create_database
from workflow_service.errors import error_body, install_error_handlers
from workflow_service.logs import RequestContext
from workflow_service.outbound import outbound_client
from workflow_service.pipelines.router import router as pipelines_router
from workflow_service.queue import RunQueue
from workflow_service.queue.arq import ArqQueue
from workflow_service.queue.inprocess import InProcessQueue
from workflow_service.runs.callbacks import CallbackDispatcher
from workflow_service.runs.reconciler import Reconciler
from workflow_service.runs.router import artifacts_router
from workflow_service.runs.router import router as runs_router
from workflow_service.runs.schemas import RunCreate
from workflow_service.runtime import Runtime
from workflow_service.settings import Settings, load_settings
from workflow_service.storage import create_storage
from workflow_service.worker.api import WorkerApi
from workflow_service.worker.executor import RunExecutor
from workflow_service.worker.jobs import execute_run, input_fetcher
from workflow_service.workflows.propagation import WorkflowPropagator
from workflow_service.workflows.router import router as workflows_router

CALLBACK_TIMEOUT_SECONDS = 10.0
BODIES_PARSED_BY_HAND = (RunCreate,)
EMBEDDED_API_TIMEOUT_SECONDS = 60.0

DESCRIPTION = """\
Runs GridLAB-D power-system simulations for other applications and keeps their results.

Authenticate with the `Workflow-API-Key` header (or `Authorization: Bearer <key>`).
Errors are JSON `{"message": ..., "errors": {...}}`; validation errors answer **400**.
Every success on the v1 paths answers **200**, creates and deletes included.
"""


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"Request body larger than MAX_CONTENT_LENGTH ({self.max_bytes} bytes)"
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await _send_json(send, 413, error_body(message))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=message)
            return incoming

        await self.app(scope, limited_receive, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less its 422 answers: this API answers 400 with ErrorResponse."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    # Bodies parsed by hand (JSON or multipart on one route) are named in openapi_extra.
    for model in BODIES_PARSED_BY_HAND:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    app.openapi_schema = document
    return document


async def _start_runtime(app: FastAPI, settings: Settings, database: Database) -> Runtime:
    """Storage, callbacks and the queue: arq when REDIS_URL is set, else in-process runs
    whose worker reaches this very app through httpx's ASGI transport (one code path)."""
    storage = create_storage(settings)
    await storage.ensure_ready()
    callbacks = CallbackDispatcher(
        outbound_client(
            allow_private=settings.callback_url_allow_private, timeout=CALLBACK_TIMEOUT_SECONDS
        ),
        settings.webhook_secret,
    )
    queue: RunQueue
    if settings.redis_url:
        queue = await ArqQueue.connect(settings.redis_url)
    else:
        async with database.sessions() as session:
            worker_key = await replace_embedded_worker_key(session)
        api = WorkerApi(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://embedded-worker",
                timeout=EMBEDDED_API_TIMEOUT_SECONDS,
            ),
            worker_key,
        )
        executor = RunExecutor(settings, api, storage, input_fetcher(settings))
        queue = InProcessQueue(execute_run, {"executor": executor}, settings.worker_concurrency)
    runtime = Runtime(settings=settings, storage=storage, queue=queue, callbacks=callbacks)
    runtime.events.subscribe(WorkflowPropagator(database, runtime).on_run_changed)
    return runtime


async def _stop_runtime(runtime: Runtime) -> None:
    await runtime.events.close()
    await runtime.queue.close()
    await runtime.callbacks.close()
    await runtime.storage.close()


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or create_database(settings)
        app.state.runtime = await _start_runtime(app, settings, app.state.database)
        reconciler = asyncio.create_task(
            Reconciler(app.state.database, app.state.runtime).run_forever(), name="reconciler"
        )
        try:
            yield
        finally:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
            await _stop_runtime(app.state.runtime)
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="Workflow Service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # operationId = the endpoint's name, so generated clients get readable methods.
        generate_unique_id_function=lambda route: route.name,
        openapi_tags=[
            {"name": "pipelines", "description": "GridLAB-D job definitions and their files."},
            {"name": "runs", "description": "Pipeline runs, their console and artifacts."},
            {"name": "workflows", "description": "Pipelines chained into a DAG, and its runs."},
            {"name": "applications", "description": "API keys (ADMIN)."},
            {"name": "health", "description": "Liveness and readiness; no key needed."},
        ],
    )
    app.state.settings = settings
    if database is not None:
        app.state.database = database
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_content_length)
    if settings.metrics_enabled:
        app.add_middleware(metrics.HttpMetrics)
        app.include_router(metrics.router)
    app.add_middleware(RequestContext)  # outermost: every line of a request has its id
    app.include_router(health.router)
    app.include_router(pipelines_router)
    app.include_router(runs_router)
    app.include_router(artifacts_router)
    app.include_router(workflows_router)
    app.include_router(applications_router)
    app.include_router(dashboard_router)
    app.openapi = lambda: _openapi_document(app)  # type: ignore[method-assign]
    return app
