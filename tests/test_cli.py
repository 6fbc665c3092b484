"""The `workflow-service` command, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import free_port, require_redis
from workflow_service import db
from workflow_service.app import create_app
from workflow_service.settings import Settings

COMMAND = str(Path(sys.executable).parent / "workflow-service")
CONFIG_VARIABLES = (
    "DATABASE_URL",
    "SQLALCHEMY_DATABASE_URI",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "HOST",
    "PORT",
    "CREDENTIALS_FILE",
)


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(overrides)
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Server:
    """`workflow-service serve` as a process; ``stop()`` answers its stdout and stderr."""

    def __init__(self, cwd: Path, port: int, **env: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [COMMAND, "serve"],
            cwd=cwd,
            env=environment(**({"PORT": str(port), "ACCESS_LOG": "false"} | env)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stop()
            try:
                if httpx.get(f"{self.url}/healthcheck", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.stop()}")

    def stop(self) -> tuple[str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=20)
        return stdout, stderr


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "embedded"
    folder.mkdir()
    yield folder


def test_serve_embedded_default_creates_prints_and_saves_one_key(server_dir: Path) -> None:
    port = free_port()
    server = Server(server_dir, port)
    try:
        credentials = server_dir / ".workflow-service" / "credentials.json"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        saved = json.loads(credentials.read_text())
        assert saved["server"] == server.url
        key = saved["api_key"]
        headers = {"Workflow-API-Key": key}
        assert httpx.get(f"{server.url}/v1/pipelines", headers=headers).json() == []
        assert httpx.get(f"{server.url}/docs").status_code == 200
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        output = "".join(server.stop())
    assert f"API_TOKEN={key}" in output
    assert str(credentials) in output
    assert (server_dir / "workflow-service.db").exists()

    again = Server(server_dir, port)
    try:
        assert httpx.get(f"{again.url}/v1/pipelines", headers=headers).status_code == 200
    finally:
        second_output = "".join(again.stop())
    assert "API_TOKEN=" not in second_output
    assert json.loads(credentials.read_text())["api_key"] == key


def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = run(["serve"], tmp_path, PORT="eighty")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0], result.stderr
    assert not (tmp_path / "workflow-service.db").exists()


def test_several_api_processes_need_redis(tmp_path: Path) -> None:
    result = run(["serve"], tmp_path, WEB_CONCURRENCY="2")
    assert result.returncode == 2
    assert "WEB_CONCURRENCY" in result.stderr and "REDIS_URL" in result.stderr
    assert not (tmp_path / "workflow-service.db").exists()


def test_serve_starts_web_concurrency_processes(server_dir: Path) -> None:
    server = Server(server_dir, free_port(), WEB_CONCURRENCY="2", REDIS_URL=require_redis())
    try:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        api_processes = children.read_text().split()
        key = json.loads((server_dir / ".workflow-service" / "credentials.json").read_text())
        for _ in range(4):
            response = httpx.get(
                f"{server.url}/v1/pipelines", headers={"Workflow-API-Key": key["api_key"]}
            )
            assert response.status_code == 200
    finally:
        server.stop()
    # uvicorn's supervisor and its two workers (plus, on some Pythons, a resource tracker).
    assert len(api_processes) >= 2, api_processes


def test_unreachable_database_stops_start_up(tmp_path: Path) -> None:
    port = free_port()
    result = run(
        ["serve"], tmp_path, DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x"
    )
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr


async def test_create_list_and_revoke_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    worker = run(
        ["create-application-key", "-n", "local worker", "-p", "PIPELINES_WORKER"],
        tmp_path,
        DATABASE_URL=url,
    )
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.count("\n") == 1 and worker.stdout.startswith("API_TOKEN=")
    worker_key = worker.stdout.strip().removeprefix("API_TOKEN=")
    client = run(
        ["create-application-key", "-n", "client", "-p", "PIPELINES_CLIENT"],
        tmp_path,
        DATABASE_URL=url,
    )
    client_key = client.stdout.strip().removeprefix("API_TOKEN=")

    listed = run(["list-application-keys"], tmp_path, DATABASE_URL=url)
    rows = [line.split("\t") for line in listed.stdout.strip().splitlines()]
    assert [row[3] for row in rows] == ["local worker", "client"]
    assert worker_key not in listed.stdout and client_key not in listed.stdout

    settings = Settings(database_url=url)
    database = db.create_database(settings)
    transport = httpx.ASGITransport(app=create_app(settings, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (
            await http.get("/v1/pipelines", headers={"Workflow-API-Key": client_key})
        ).status_code == 200
        assert (
            await http.get("/v1/pipelines", headers={"Workflow-API-Key": worker_key})
        ).status_code == 403
        revoked = run(["revoke-application-key", rows[1][0]], tmp_path, DATABASE_URL=url)
        assert revoked.returncode == 0, revoked.stderr
        assert (
            await http.get("/v1/pipelines", headers={"Workflow-API-Key": client_key})
        ).status_code == 401
    await database.dispose()

    unknown = run(["revoke-application-key", "f" * 32], tmp_path, DATABASE_URL=url)
    assert unknown.returncode == 2 and "no live application key" in unknown.stderr
    bad = run(["create-application-key", "-n", "x", "-p", "ROOT"], tmp_path, DATABASE_URL=url)
    assert bad.returncode != 0 and "API_TOKEN" not in bad.stdout


def test_sed_pipeline_of_the_original_keeps_working(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    # The README's documented shell pipeline, with fixed text.
    result = subprocess.run(  # noqa: S602
        f"'{COMMAND}' create-application-key -n 'local worker' -p PIPELINES_WORKER"
        " | sed 's/^/WORKER_/' > .worker-env",
        shell=True,
        cwd=tmp_path,
        env=environment(DATABASE_URL=url),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    content = (tmp_path / ".worker-env").read_text()
    assert content.startswith("WORKER_API_TOKEN=wfs_") and content.count("\n") == 1


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = Path(__file__).resolve().parent / "models"


def test_submit_runs_a_model_and_downloads_its_results(server_dir: Path) -> None:
    """The README's quick start: `make run`, then `submit examples/ieee13 --wait --download`."""
    server = Server(server_dir, free_port())
    try:
        done = run(["submit", str(EXAMPLES / "ieee13"), "--wait", "--download", "out/"], server_dir)
        assert done.returncode == 0, done.stderr
        assert "run COMPLETED" in done.stderr and "state: RUNNING" in done.stderr
        out = server_dir / "out"
        assert sorted(path.name for path in out.iterdir()) == [
            "ieee13_substation.csv",
            "ieee13_v634.csv",
            "ieee13_v675.csv",
        ]
        rows = [line for line in (out / "ieee13_v675.csv").read_text().splitlines()]
        assert len([line for line in rows if not line.startswith("#")]) == 1440

        failed = run(
            ["submit", str(MODELS / "bad_syntax" / "bad_syntax.glm"), "--wait"], server_dir
        )
        assert failed.returncode == 1
        assert "FAILED" in failed.stderr and "expected ';'" in failed.stderr

        bad_define = run(["submit", str(EXAMPLES / "ieee13"), "-D", "novalue"], server_dir)
        assert bad_define.returncode == 2 and "name=value" in bad_define.stderr
    finally:
        server.stop()


def test_submit_without_a_server_says_how_to_get_one(tmp_path: Path) -> None:
    result = run(["submit", str(EXAMPLES / "ieee13")], tmp_path)
    assert result.returncode == 2
    assert "--server" in result.stderr and "WORKFLOW_SERVER" in result.stderr
