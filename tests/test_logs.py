"""Logs: JSON lines with request and run ids (LOG_FORMAT=json), the request id header."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from tests.harness import MODELS, Service, free_port
from tests.test_cli import Server
from workflow_service import logs
from workflow_service.settings import Settings

HEX_ID = re.compile(r"[0-9a-f]{32}")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (a line that is not fails the test), with the common keys."""
    parsed = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert {"timestamp", "level", "logger", "event"} <= entry.keys(), entry
        parsed.append(entry)
    return parsed


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(
        tmp_path,
        free_port(),
        LOG_FORMAT="json",
        ACCESS_LOG="true",
        LOG_LEVEL="info",
        RUN_WORK_DIR=str(tmp_path),
    )
    try:
        yield server
    finally:
        server.stop()


def test_serve_logs_json_with_request_and_run_ids(json_server: Server, tmp_path: Path) -> None:
    key = json.loads((tmp_path / ".workflow-service" / "credentials.json").read_text())["api_key"]
    with httpx.Client(base_url=json_server.url, headers={"Workflow-API-Key": key}) as client:
        answer = client.get("/v1/pipelines", headers={"X-Request-ID": "abc-123"})
        assert answer.status_code == 200
        assert answer.headers["X-Request-ID"] == "abc-123"
        pipeline = client.post("/v1/pipelines", json={"name": "tiny", "kind": "gridlabd"}).json()
        runs = f"/v1/pipelines/{pipeline['uuid']}/runs"
        tiny = (MODELS / "tiny" / "tiny.glm").read_bytes()
        run = client.post(runs, files=[("files", ("tiny.glm", tiny))]).json()
        deadline = time.monotonic() + 60
        while client.get(f"{runs}/{run['uuid']}").json()["state"] != "COMPLETED":
            assert time.monotonic() < deadline, "the run did not complete"
            time.sleep(0.1)
    stdout, stderr = json_server.stop()
    assert "Serving on" in stdout  # the banner is the command's output, not a log line
    lines = json_lines(stderr)
    tagged = [line for line in lines if line.get("request_id") == "abc-123"]
    assert tagged, stderr
    [access] = [line for line in tagged if line["logger"] == "uvicorn.access"]
    assert access["method"] == "GET" and access["path"] == "/v1/pipelines"
    assert access["status"] == 200
    others = [
        line["request_id"] for line in lines if line.get("request_id", "abc-123") != "abc-123"
    ]
    assert others and all(HEX_ID.fullmatch(request_id) for request_id in others)
    about_run = [line for line in lines if line.get("run_uuid") == run["uuid"]]
    events = {line["logger"] for line in about_run}
    assert "workflow_service.worker.executor" in events, about_run
    assert "workflow_service.runs.service" in events, about_run
    assert any(line.get("state") == "COMPLETED" for line in about_run), about_run
    # The run's own route access lines name it too.
    assert any(
        line["logger"] == "uvicorn.access" and line.get("pipeline_uuid") == pipeline["uuid"]
        for line in about_run
    )


@pytest.fixture
def json_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness's worker processes inherit the environment: make them log JSON."""
    monkeypatch.setenv("LOG_FORMAT", "json")


@pytest.mark.parametrize("mode", ["distributed"])
async def test_worker_lines_name_the_run(
    json_worker: None, service: Service, tmp_path: Path
) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    run = await service.start(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    for process in service.processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    [log] = await asyncio.to_thread(lambda: list(tmp_path.glob("worker-*.log")))
    lines = json_lines(await asyncio.to_thread(log.read_text))
    ended = [line for line in lines if line["logger"] == "workflow_service.worker.executor"]
    assert ended and all(line["run_uuid"] == run["uuid"] for line in ended), ended
    assert all(line["pipeline_uuid"] == pipeline["uuid"] for line in ended)


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "has space", "semi;colon", "ünicode", ""],
)
async def test_a_bad_request_id_is_replaced(anonymous: httpx.AsyncClient, sent: str) -> None:
    response = await anonymous.get("/healthcheck", headers={"X-Request-ID": sent.encode()})
    assert response.status_code == 200
    answered = response.headers["X-Request-ID"]
    assert answered != sent and HEX_ID.fullmatch(answered)


async def test_a_sane_request_id_is_kept_and_a_missing_one_made(
    anonymous: httpx.AsyncClient,
) -> None:
    kept = await anonymous.get("/healthcheck", headers={"X-Request-ID": "Trace.42_a-b"})
    assert kept.headers["X-Request-ID"] == "Trace.42_a-b"
    made = await anonymous.get("/healthcheck")
    assert HEX_ID.fullmatch(made.headers["X-Request-ID"])
    assert (
        made.headers["X-Request-ID"]
        != (await anonymous.get("/healthcheck")).headers["X-Request-ID"]
    )


def test_control_characters_never_pass() -> None:
    for sent in (b"abc\n123", b"abc\r\nInjected: 1", b"abc\x00"):
        assert HEX_ID.fullmatch(logs.request_id_of([(b"x-request-id", sent)]))
    assert logs.request_id_of([(b"x-request-id", b"a" * 64)]) == "a" * 64


def render(log_format: str, record: logging.LogRecord) -> str:
    with structlog.contextvars.bound_contextvars(request_id="req-1"), logs.run_context("p1", "r1"):
        return logs.formatter(log_format).format(record)


def test_both_formats_carry_the_context_and_extras() -> None:
    record = logging.LogRecord(
        "workflow_service.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None
    )
    record.state = "FAILED"
    line = json.loads(render("json", record))
    assert line["event"] == "hello world" and line["level"] == "warning"
    assert line["logger"] == "workflow_service.test"
    assert (line["request_id"], line["run_uuid"], line["pipeline_uuid"]) == ("req-1", "r1", "p1")
    assert line["state"] == "FAILED"
    text = render("text", record)
    assert "hello world" in text and "request_id=req-1" in text and "run_uuid=r1" in text
    assert not text.startswith("{")


def test_exceptions_stay_on_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "workflow_service.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    rendered = render("json", record)
    assert "\n" not in rendered
    assert "ValueError: boom" in json.loads(rendered)["exception"]


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert Settings().log_format == "json"
    config = logs.logging_config(Settings())
    assert config["formatters"]["structured"]["log_format"] == "json"
    assert config["loggers"]["uvicorn.access"]["propagate"] is True
