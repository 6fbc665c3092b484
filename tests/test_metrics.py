"""Prometheus metrics on /metrics: scrape-time gauges, HTTP and run histograms."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import MODELS, Service, start_service
from workflow_service import db, metrics
from workflow_service.app import create_app
from workflow_service.queue.inprocess import InProcessQueue
from workflow_service.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
RUN_ROUTE = "/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}"


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics", headers={"Workflow-API-Key": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


async def scrape_until(client: httpx.AsyncClient, check: Any) -> tuple[str, Samples]:
    """The histograms are observed just after the state change commits: poll a moment."""
    deadline = time.monotonic() + 10
    while True:
        text, samples = await scrape(client)
        if check(samples) or time.monotonic() > deadline:
            return text, samples
        await asyncio.sleep(0.05)


async def test_metrics_after_a_run(service: Service) -> None:
    _, before = await scrape(service.client)
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    run = await service.start(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    text, after = await scrape_until(
        service.client,
        lambda s: delta(s, "workflow_run_total_seconds_count", state="COMPLETED") >= 1,
    )
    assert value(after, "workflow_runs", state="COMPLETED") == 1
    assert value(after, "workflow_runs", state="RUNNING") == 0
    assert value(after, "workflow_queue_depth") == 0
    assert value(after, "workflow_metrics_source_up", source="database") == 1
    assert value(after, "workflow_metrics_source_up", source="queue") == 1
    assert delta(after, "workflow_run_duration_seconds_count", state="COMPLETED") == 1
    assert delta(after, "workflow_run_total_seconds_count", state="COMPLETED") == 1
    assert delta(after, "workflow_run_wait_seconds_count") == 1
    assert value(after, "workflow_run_duration_seconds_sum", state="COMPLETED") > 0
    # The client polled the run: counted under the route template, never the raw path.
    assert (
        value(
            after,
            "workflow_http_request_duration_seconds_count",
            method="GET",
            route=RUN_ROUTE,
            status="200",
        )
        >= 1
    )
    assert run["uuid"] not in text and pipeline["uuid"] not in text


@pytest.mark.parametrize("mode", ["distributed"])
async def test_queue_depth_counts_runs_no_worker_took(
    mode_settings: tuple[Settings, str | None], tmp_path: Path
) -> None:
    settings, s3_endpoint = mode_settings
    assert settings.redis_url
    connection = redis.Redis.from_url(settings.redis_url)
    await connection.flushdb()
    await connection.aclose()
    async with start_service("distributed", settings, tmp_path, s3_endpoint, workers=0) as service:
        pipeline = await service.pipeline(kind="gridlabd", name="tiny")
        await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
        for _ in range(3):
            await service.start(pipeline["uuid"])
        _, samples = await scrape(service.client)
        assert value(samples, "workflow_queue_depth") == 3
        assert value(samples, "workflow_runs", state="NOT_STARTED") == 3
        assert value(samples, "workflow_runs", state="COMPLETED") == 0


async def test_in_process_queue_depth_counts_waiting_and_running_jobs() -> None:
    release = asyncio.Event()

    async def job(ctx: dict[str, Any], pipeline_uuid: str, run_uuid: str) -> None:
        await release.wait()

    queue = InProcessQueue(job, {}, concurrency=1)
    for number in range(3):
        await queue.enqueue("p", f"run{number}", 0)
    assert await queue.depth() == 3
    release.set()
    for _ in range(100):
        if await queue.depth() == 0:
            break
        await asyncio.sleep(0.01)
    assert await queue.depth() == 0
    await queue.close()


async def test_unmatched_paths_share_one_label(anonymous: httpx.AsyncClient) -> None:
    raw = "/no/such/path/0123456789abcdef"
    assert (await anonymous.get(raw)).status_code == 404
    text, samples = await scrape(anonymous)
    assert raw not in text
    assert (
        value(
            samples,
            "workflow_http_request_duration_seconds_count",
            method="GET",
            route="<unmatched>",
            status="404",
        )
        >= 1
    )


async def test_metrics_need_no_key_and_stay_out_of_the_openapi_document(
    anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    _, samples = await scrape(anonymous)
    assert value(samples, "workflow_metrics_source_up", source="database") == 1
    assert "/metrics" not in app.openapi()["paths"]


async def test_metrics_can_be_turned_off(settings: Settings, database: db.Database) -> None:
    application = create_app(settings.model_copy(update={"metrics_enabled": False}), database)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/metrics")).status_code == 404
            assert (await client.get("/healthcheck")).status_code == 200


async def test_a_source_down_is_reported_not_raised(app: FastAPI) -> None:
    class Broken(InProcessQueue):
        async def depth(self) -> int:
            raise OSError("queue down")

    broken = Broken(app.state.runtime.queue._job, {}, 1)
    body = await metrics.exposition(app.state.database, broken)
    samples = parse(body.decode())
    assert value(samples, "workflow_metrics_source_up", source="queue") == 0
    assert value(samples, "workflow_metrics_source_up", source="database") == 1
    assert ("workflow_queue_depth", frozenset()) not in samples


def test_api_processes_sharing_a_multiprocess_folder_are_summed(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR: what two processes observed, any process answers."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    observe = (
        "from workflow_service import metrics; "
        "metrics.HTTP_REQUEST_SECONDS.labels('GET', '/healthcheck', '200').observe(0.1)"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", observe], env=env, check=True, timeout=60)
    render = "from workflow_service import metrics; print(metrics._render([]).decode())"
    shown = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, timeout=60, capture_output=True
    )
    samples = parse(shown.stdout.decode())
    count = "workflow_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/healthcheck", status="200") == 2
    assert not any(name.startswith("process_") for name, _ in samples)
