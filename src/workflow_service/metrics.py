"""Prometheus metrics on ``/metrics`` (no key needed; METRICS_ENABLED=false removes it).

Two kinds:

- gauges computed when scraped, the same whichever API process answers: runs by state
  (one GROUP BY on the database) and the queue's depth (arq: its Redis sorted set;
  in-process: the jobs the API process holds);
- histograms this process observed: HTTP requests by method, route template and status
  (:class:`HttpMetrics`), and the times of the runs it saw end (:func:`observe_run_change`).
  With several API processes (WEB_CONCURRENCY) each has its own unless
  PROMETHEUS_MULTIPROC_DIR names a folder they share (prometheus_client's multiprocess
  mode; docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_service.db import Database
from workflow_service.queue import RunQueue
from workflow_service.runs.models import PipelineRun
from workflow_service.runs.states import RunState

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_SECONDS = 3.0
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
RUN_SECONDS_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
WAIT_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's own metrics (the live gauges are added at each scrape)."""

HTTP_REQUEST_SECONDS = Histogram(
    "workflow_http_request_duration_seconds",
    "HTTP requests, from their arrival until their response ended, by method, route "
    "template (never the raw path) and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
RUN_WAIT_SECONDS = Histogram(
    "workflow_run_wait_seconds",
    "Queue wait: how long a run waited NOT_STARTED before a worker set it RUNNING.",
    buckets=WAIT_SECONDS_BUCKETS,
    registry=REGISTRY,
)
RUN_DURATION_SECONDS = Histogram(
    "workflow_run_duration_seconds",
    "Execution: RUNNING to the final state (inputs, engine, artifact uploads), by final "
    "state, for runs that ended while RUNNING.",
    ["state"],
    buckets=RUN_SECONDS_BUCKETS,
    registry=REGISTRY,
)
RUN_TOTAL_SECONDS = Histogram(
    "workflow_run_total_seconds",
    "Turnaround: creation to the final state, by final state (queue wait, retries and "
    "execution; minus workflow_run_duration_seconds it is the service's overhead).",
    ["state"],
    buckets=RUN_SECONDS_BUCKETS,
    registry=REGISTRY,
)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


if not multiprocess():  # per-process figures mean nothing summed over shared files
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    GCCollector(registry=REGISTRY)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def observe_run_change(
    previous: RunState, previous_changed_at: datetime | None, run: PipelineRun
) -> None:
    """Observe a state change this process just committed (``run`` as it is now)."""
    state = RunState(run.state)
    if state is RunState.RUNNING and previous is RunState.NOT_STARTED:
        wait = _seconds(previous_changed_at, run.started_at)
        if wait is not None:
            RUN_WAIT_SECONDS.observe(wait)
    if not state.is_final:
        return
    if previous is RunState.RUNNING:
        duration = _seconds(run.started_at, run.completed_at)
        if duration is not None:
            RUN_DURATION_SECONDS.labels(state.value).observe(duration)
    total = _seconds(run.created_at, run.completed_at)
    if total is not None:
        RUN_TOTAL_SECONDS.labels(state.value).observe(total)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class HttpMetrics:
    """Pure ASGI middleware timing each request under its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            HTTP_REQUEST_SECONDS.labels(method, _route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


async def _runs_by_state(database: Database) -> dict[str, int]:
    query = (
        select(PipelineRun.state, func.count())
        .where(PipelineRun.is_deleted.is_(False))
        .group_by(PipelineRun.state)
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {str(state): int(count) for state, count in rows}


async def live_families(database: Database, queue: RunQueue) -> list[Metric]:
    """The gauges read at scrape time; a source that fails (or takes over 3 s) is
    reported down in workflow_metrics_source_up and its gauge left out."""
    runs, depth = await asyncio.gather(
        asyncio.wait_for(_runs_by_state(database), SCRAPE_TIMEOUT_SECONDS),
        asyncio.wait_for(queue.depth(), SCRAPE_TIMEOUT_SECONDS),
        return_exceptions=True,
    )
    up = GaugeMetricFamily(
        "workflow_metrics_source_up",
        "Whether the source of the scrape-time gauges answered this scrape (1) or not (0).",
        labels=["source"],
    )
    families: list[Metric] = [up]
    if isinstance(runs, BaseException):
        logger.warning("metrics: cannot count runs: %r", runs)
        up.add_metric(["database"], 0)
    else:
        up.add_metric(["database"], 1)
        gauge = GaugeMetricFamily(
            "workflow_runs",
            "Runs in each state now (deleted runs left out), counted in the database.",
            labels=["state"],
        )
        for state in RunState:
            gauge.add_metric([state.value], runs.get(state.value, 0))
        families.append(gauge)
    if isinstance(depth, BaseException):
        logger.warning("metrics: cannot read the queue depth: %r", depth)
        up.add_metric(["queue"], 0)
    else:
        up.add_metric(["queue"], 1)
        families.append(
            GaugeMetricFamily(
                "workflow_queue_depth",
                "Jobs in the run queue: waiting, or being executed (arq keeps a job in its "
                "queue until it ends). Waiting runs alone: workflow_runs{state=NOT_STARTED}.",
                value=depth,
            )
        )
    return families


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _Registered(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def _render(live: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(live))
    if multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registered(REGISTRY))
    return generate_latest(registry)


async def exposition(database: Database, queue: RunQueue) -> bytes:
    """The text exposition: live gauges gathered without blocking the loop, then
    rendered (file and /proc reads included) in a thread."""
    live = await live_families(database, queue)
    return await asyncio.to_thread(_render, live)


router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body = await exposition(request.app.state.database, request.app.state.runtime.queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
