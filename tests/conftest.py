"""Test fixtures: a clean database per test on SQLite always, and on PostgreSQL
when TEST_DATABASE_URL is set (``make test`` sets it when the local server
answers; under CI=true a missing PostgreSQL fails the run instead of skipping).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.harness import Keys, free_port, mode, mode_settings, recorder, service
from workflow_service import db
from workflow_service.app import create_app
from workflow_service.auth.scheme import Permission
from workflow_service.auth.service import create_application
from workflow_service.models import Base
from workflow_service.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def require_postgres() -> str:
    """The PostgreSQL URL, or a skip (a failure under CI=true)."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("CI=true but TEST_DATABASE_URL is not set: PostgreSQL is required in CI")
    pytest.skip("PostgreSQL not configured (set TEST_DATABASE_URL or run `make test`)")


async def _migrate(url: str) -> None:
    settings = Settings(database_url=url)
    database = db.create_database(settings)
    try:
        await db.downgrade(database, settings.database_url, "base")
        await db.upgrade(database, settings.database_url, "head")
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    url = require_postgres()
    asyncio.run(_migrate(url))
    return url


@pytest.fixture
def clean_postgres(postgres_migrated: str) -> str:
    """The migrated PostgreSQL test database, emptied."""

    async def truncate() -> None:
        settings = Settings(database_url=postgres_migrated)
        database = db.create_database(settings)
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        async with database.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await database.dispose()

    asyncio.run(truncate())
    return postgres_migrated


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("clean_postgres"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        max_content_length=64 * 1024,
        credentials_file=tmp_path / "credentials.json",
        storage_url=str(tmp_path / "artifacts"),
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[db.Database]:
    database = db.create_database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def keys(database: db.Database) -> Keys:
    made = {}
    async with database.sessions() as session:
        for permission in Permission:
            _, made[permission] = await create_application(
                session, f"test {permission.value}", [permission]
            )
    return Keys(
        client=made[Permission.PIPELINES_CLIENT],
        worker=made[Permission.PIPELINES_WORKER],
        admin=made[Permission.ADMIN],
    )


@pytest.fixture
async def app(settings: Settings, database: db.Database) -> AsyncIterator[FastAPI]:
    """The app, started: embedded mode (local storage, in-process runs)."""
    application = create_app(settings, database)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app without any key."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def client(anonymous: httpx.AsyncClient, keys: Keys) -> httpx.AsyncClient:
    """An HTTP client of the app holding a PIPELINES_CLIENT key."""
    anonymous.headers["Workflow-API-Key"] = keys.client
    return anonymous


MOTO_START_SECONDS = 30.0


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of moto's S3 server, run as a process for the session. Fails, never skips."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + MOTO_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto server exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"moto server did not answer on {url} within {MOTO_START_SECONDS} s"
                    )
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_endpoint(s3_server: str) -> str:
    """The moto server with its state reset."""
    httpx.post(f"{s3_server}/moto-api/reset").raise_for_status()
    return s3_server


__all__ = [
    "Keys",
    "free_port",
    "mode",
    "mode_settings",
    "recorder",
    "service",
]  # fixtures of tests.harness
