"""Test harness: a whole service per test, in either of its two shapes:

- ``embedded``: SQLite, local artifact folder, runs executed in the API process;
- ``distributed``: PostgreSQL, Redis, moto's S3 server, and a real
  ``workflow-service worker`` (arq) process reporting to the API over HTTP.

The API is served by uvicorn on a loopback port in both, so tests talk HTTP
to it like any client (the live console stream included).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from workflow_service import db
from workflow_service.app import create_app
from workflow_service.auth.scheme import Permission
from workflow_service.auth.service import create_application
from workflow_service.settings import Settings

MODELS = Path(__file__).resolve().parent / "models"
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Keys:
    client: str
    worker: str
    admin: str

    def for_permission(self, permission: Permission) -> str:
        return {
            Permission.PIPELINES_CLIENT: self.client,
            Permission.PIPELINES_WORKER: self.worker,
            Permission.ADMIN: self.admin,
        }[permission]


def engine_processes(run_uuid: str) -> list[int]:
    """Processes whose working directory is this run's (the engine and its children)."""
    marker = f"run-{run_uuid[:12]}-"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in str((entry / "cwd").readlink()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class Service:
    mode: str
    url: str
    settings: Settings
    database: db.Database
    keys: Keys
    client: httpx.AsyncClient
    worker: httpx.AsyncClient
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    app: Any = None
    port: int = 0
    serving: tuple[uvicorn.Server, asyncio.Task[None]] | None = None

    async def stop_api(self) -> None:
        assert self.serving is not None
        server, task = self.serving
        server.should_exit = True
        await task
        self.serving = None

    async def start_api(self) -> None:
        self.serving = await _serve(self.app, self.port)

    async def pipeline(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/pipelines", json={"name": "test", **body})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def add_files(self, pipeline_uuid: str, paths: Iterable[Path]) -> list[dict[str, Any]]:
        files = [("files", (path.name, path.read_bytes())) for path in paths]
        response = await self.client.post(f"/v1/pipelines/{pipeline_uuid}/files", files=files)
        assert response.status_code == 200, response.text
        return list(response.json())

    async def start(
        self,
        pipeline_uuid: str,
        paths: Iterable[Path] = (),
        data: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = f"/v1/pipelines/{pipeline_uuid}/runs"
        files = [("files", (path.name, path.read_bytes())) for path in paths]
        if files or data:
            response = await self.client.post(url, files=files or None, data=data)
        else:
            response = await self.client.post(url, json=json or {})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def run(self, pipeline_uuid: str, run_uuid: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait(
        self,
        pipeline_uuid: str,
        run_uuid: str,
        states: set[str] = FINAL,
        timeout: float = 90.0,  # noqa: ASYNC109 - a test deadline
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.run(pipeline_uuid, run_uuid)
            if run["state"] in states:
                return run
            assert time.monotonic() < deadline, f"run still {run['state']} after {timeout} s"
            await asyncio.sleep(0.1)

    async def console(self, pipeline_uuid: str, run_uuid: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}/console")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def download(self, artifact: dict[str, Any]) -> bytes:
        response = await self.client.get(f"/v1/artifacts/{artifact['uuid']}", follow_redirects=True)
        assert response.status_code == 200, response.text
        return response.content


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_rows(csv: bytes) -> list[str]:
    return [line for line in csv.decode().splitlines() if line and not line.startswith("#")]


def require_redis() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        with socket.create_connection(("127.0.0.1", 6379), 1):
            return url
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Redis does not answer on 127.0.0.1:6379")
        pytest.skip("Redis not running on 127.0.0.1:6379")


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        assert not task.done(), "the API server stopped during start-up"
        assert time.monotonic() < deadline, "the API server did not start"
        await asyncio.sleep(0.02)
    return server, task


def service_settings(mode: str, database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    common: dict[str, Any] = {
        "database_url": database_url,
        "max_content_length": 8 * 1024 * 1024,
        "input_url_allow_private": True,
        "callback_url_allow_private": True,
        "heartbeat_seconds": 1.0,
        "worker_shutdown_grace_seconds": 0,
        "worker_concurrency": 2,
        "run_work_dir": tmp_path / "runs",
        "credentials_file": tmp_path / "credentials.json",
    }
    (tmp_path / "runs").mkdir(exist_ok=True)
    if mode == "embedded":
        common["storage_url"] = str(tmp_path / "artifacts")
    return Settings(**(common | overrides))


@contextlib.asynccontextmanager
async def start_service(
    mode: str,
    settings: Settings,
    tmp_path: Path,
    s3_endpoint: str | None = None,
    workers: int = 1,
    port: int | None = None,
) -> AsyncIterator[Service]:
    database = db.create_database(settings)
    async with database.sessions() as session:
        made = {}
        for permission in Permission:
            _, made[permission] = await create_application(session, permission.value, [permission])
    keys = Keys(
        client=made[Permission.PIPELINES_CLIENT],
        worker=made[Permission.PIPELINES_WORKER],
        admin=made[Permission.ADMIN],
    )
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(settings, database)
    server, task = await _serve(app, port)
    processes: list[subprocess.Popen[bytes]] = []
    if mode == "distributed":
        processes.extend(
            start_worker(settings, url, keys.worker, tmp_path, s3_endpoint) for _ in range(workers)
        )
    client = httpx.AsyncClient(base_url=url, headers={"Workflow-API-Key": keys.client}, timeout=30)
    worker = httpx.AsyncClient(base_url=url, headers={"Workflow-API-Key": keys.worker}, timeout=30)
    service = Service(
        mode, url, settings, database, keys, client, worker, processes, app, port, (server, task)
    )
    try:
        yield service
    finally:
        await client.aclose()
        await worker.aclose()
        for process in processes:
            stop_process(process)
        if service.serving is not None:
            await service.stop_api()
        await database.dispose()


def worker_environment(
    settings: Settings, api_url: str, worker_key: str, s3_endpoint: str | None
) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("S3_", "DATABASE"))
    }
    env |= {
        "REDIS_URL": str(settings.redis_url),
        "WORKER_API_SERVER": api_url,
        "WORKER_API_TOKEN": worker_key,
        "INPUT_URL_ALLOW_PRIVATE": str(settings.input_url_allow_private).lower(),
        "INPUT_MAX_BYTES": str(settings.input_max_bytes),
        "HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "RUN_WORK_DIR": str(settings.run_work_dir),
        "LOG_LEVEL": os.environ.get("TEST_WORKER_LOG_LEVEL", "info"),
        "HEARTBEAT_TIMEOUT_SECONDS": str(settings.heartbeat_timeout_seconds),
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(settings.worker_shutdown_grace_seconds),
        "STORAGE_RETRY_SECONDS": str(settings.storage_retry_seconds),
        "RUN_MAX_OUTPUT_BYTES": str(settings.run_max_output_bytes),
    }
    if settings.container_runtime:
        env["CONTAINER_RUNTIME"] = settings.container_runtime
    if s3_endpoint:
        env |= {
            "S3_ENDPOINT_URL": s3_endpoint,
            "S3_ACCESS_KEY_ID": "test",
            "S3_SECRET_ACCESS_KEY": "test",
            "S3_BUCKET": settings.s3_bucket,
        }
    return env


def start_worker(
    settings: Settings, api_url: str, worker_key: str, tmp_path: Path, s3_endpoint: str | None
) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log").open("wb")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "workflow-service"), "worker"],
        env=worker_environment(settings, api_url, worker_key, s3_endpoint),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["embedded", "distributed"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mode_settings(
    request: pytest.FixtureRequest, mode: str, tmp_path: Path, sqlite_template: Path
) -> tuple[Settings, str | None]:
    """Settings of the service under test, and the S3 endpoint when there is one."""
    overrides = getattr(request, "param", {})
    if mode == "embedded":
        path = tmp_path / "service.db"
        path.write_bytes(sqlite_template.read_bytes())
        return service_settings(mode, f"sqlite+aiosqlite:///{path}", tmp_path, **overrides), None
    database_url = request.getfixturevalue("clean_postgres")
    redis_url = require_redis()
    s3_endpoint = str(request.getfixturevalue("s3_endpoint"))
    settings = service_settings(
        mode,
        database_url,
        tmp_path,
        redis_url=redis_url,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_bucket=f"test-{uuid.uuid4().hex[:12]}",
        **overrides,
    )
    return settings, s3_endpoint


@pytest.fixture
async def service(
    mode: str, mode_settings: tuple[Settings, str | None], tmp_path: Path
) -> AsyncIterator[Service]:
    settings, s3_endpoint = mode_settings
    if settings.redis_url:
        import redis.asyncio as redis

        connection = redis.Redis.from_url(settings.redis_url)
        await connection.flushdb()
        await connection.aclose()
    async with start_service(mode, settings, tmp_path, s3_endpoint) as running:
        yield running


class Recorder:
    """A local HTTP server: serves files on GET, records POSTed callbacks."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.posts: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = recorder.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                recorder.posts.append((dict(self.headers), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    files = {
        "tiny.glm": (MODELS / "tiny" / "tiny.glm").read_bytes(),
        "big.bin": b"x" * 200_000,
    }
    server = Recorder(files)
    yield server
    server.close()
