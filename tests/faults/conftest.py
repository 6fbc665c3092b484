"""Parts that tests break on purpose: a private Redis server, and TCP proxies in front
of PostgreSQL and the S3 server that a test can cut and restore (the machine's own
services are shared, so they are never stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Service, free_port, service_settings, start_service


class RedisServer:
    """redis-server on a free loopback port, stopped and started by the test."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for the fault tests"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class TcpProxy:
    """Forwards a loopback port to a target; `cut()` drops every connection and refuses
    new ones, as if the target went away; `restore()` brings it back on the same port."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self.connections |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self.connections -= {writer, upstream_writer}

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for connection in list(self.connections):
            connection.transport.abort()
        self.connections.clear()
        await self.server.wait_closed()
        self.server = None

    async def restore(self) -> None:
        await self.start()


@pytest.fixture
async def postgres_proxy(clean_postgres: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test PostgreSQL, and the database URL through it."""
    proxy = TcpProxy(5432)
    await proxy.start()
    yield proxy, clean_postgres.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    if proxy.server is not None:
        await proxy.cut()


@pytest.fixture
async def s3_proxy(s3_endpoint: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    await proxy.start()
    yield proxy
    if proxy.server is not None:
        await proxy.cut()


FAST_RECOVERY = {
    "heartbeat_seconds": 0.5,
    "heartbeat_timeout_seconds": 3.0,
    "reconcile_seconds": 0.5,
}


@contextlib.asynccontextmanager
async def distributed(
    tmp_path: Path,
    *,
    database_url: str,
    redis_url: str,
    s3_endpoint: str,
    workers: int = 2,
    **overrides: Any,
) -> AsyncIterator[Service]:
    settings = service_settings(
        "distributed",
        database_url,
        tmp_path,
        redis_url=redis_url,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_bucket=f"test-{uuid.uuid4().hex[:12]}",
        **(FAST_RECOVERY | overrides),
    )
    async with start_service(
        "distributed", settings, tmp_path, s3_endpoint, workers=workers
    ) as service:
        yield service


@pytest.fixture
def faulty(
    tmp_path: Path, clean_postgres: str, redis_server: RedisServer, s3_endpoint: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[Service]]:
    """Starts the distributed service on a private Redis; keyword arguments override."""
    return functools.partial(
        distributed,
        tmp_path,
        database_url=clean_postgres,
        redis_url=redis_server.url,
        s3_endpoint=s3_endpoint,
    )


Faulty = Callable[..., contextlib.AbstractAsyncContextManager[Service]]
