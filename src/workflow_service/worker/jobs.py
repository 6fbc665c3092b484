"""The job function shared by arq and the in-process queue, and the arq worker itself."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from arq.worker import Worker, func

from workflow_service.outbound import outbound_client
from workflow_service.queue.arq import JOB_NAME, redis_settings
from workflow_service.settings import Settings
from workflow_service.storage import create_storage
from workflow_service.worker.api import WorkerApi
from workflow_service.worker.executor import RunExecutor

logger = logging.getLogger(__name__)

API_TIMEOUT_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 60.0
# Runs enforce their own timeouts; arq's only has to outlast the longest.
JOB_TIMEOUT_SECONDS = 8 * 24 * 3600


async def execute_run(ctx: dict[str, Any], pipeline_uuid: str, run_uuid: str) -> None:
    executor: RunExecutor = ctx["executor"]
    await executor.execute(pipeline_uuid, run_uuid)


def input_fetcher(settings: Settings) -> httpx.AsyncClient:
    return outbound_client(
        allow_private=settings.input_url_allow_private, timeout=FETCH_TIMEOUT_SECONDS
    )


def arq_worker(settings: Settings) -> Worker:
    """An arq worker executing runs for the API at WORKER_API_SERVER."""
    if not settings.redis_url or not settings.worker_api_server or not settings.worker_api_token:
        raise ValueError("a worker needs REDIS_URL, WORKER_API_SERVER and WORKER_API_TOKEN")
    api_server, api_token = settings.worker_api_server, settings.worker_api_token

    async def startup(ctx: dict[str, Any]) -> None:
        storage = create_storage(settings)
        await storage.ensure_ready()
        client = httpx.AsyncClient(base_url=api_server, timeout=API_TIMEOUT_SECONDS)
        fetcher = input_fetcher(settings)
        ctx["resources"] = (storage, client, fetcher)
        ctx["executor"] = RunExecutor(settings, WorkerApi(client, api_token), storage, fetcher)

    async def shutdown(ctx: dict[str, Any]) -> None:
        storage, client, fetcher = ctx.get("resources", (None, None, None))
        for resource in (client, fetcher):
            if resource is not None:
                await resource.aclose()
        if storage is not None:
            await storage.close()

    return Worker(
        functions=[func(execute_run, name=JOB_NAME, max_tries=1)],
        redis_settings=redis_settings(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_concurrency,
        poll_delay=settings.queue_poll_seconds,
        allow_abort_jobs=True,
        job_timeout=JOB_TIMEOUT_SECONDS,
        keep_result=3600,
        handle_signals=True,
        job_completion_wait=settings.worker_shutdown_grace_seconds,
    )
