"""A moto S3 server for the session, and the storage backends the tests run against."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from workflow_service.storage import LocalStorage, S3Storage, Storage

MOTO_START_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of moto's S3 server, run as a process for the session. Fails, never skips."""
    port = _free_port()
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


@pytest.fixture
async def make_s3() -> AsyncIterator[Callable[..., S3Storage]]:
    """Makes S3Storage backends (each on a new bucket unless named), closed at teardown."""
    made: list[S3Storage] = []

    def make(endpoint: str, bucket: str | None = None) -> S3Storage:
        made.append(
            S3Storage(
                bucket or f"test-{uuid.uuid4().hex[:16]}",
                endpoint_url=endpoint,
                access_key="test",
                secret_key="test",
                presigned_timeout=600,
            )
        )
        return made[-1]

    yield make
    for storage in made:
        await storage.close()


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, make_s3: Callable[..., S3Storage]
) -> Storage:
    backend: Storage
    if request.param == "local":
        backend = LocalStorage(tmp_path / "objects")
    else:
        backend = make_s3(request.getfixturevalue("s3_endpoint"))
    await backend.ensure_ready()
    return backend


@pytest.fixture
def leftovers(storage: Storage, request: pytest.FixtureRequest) -> Callable[[], set[str]]:
    """Lists what the backend holds: object keys, plus local temporary files and S3
    multipart uploads in progress (as `upload:KEY`)."""
    if isinstance(storage, LocalStorage):
        root = storage.root
        return lambda: {
            path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()
        }
    assert isinstance(storage, S3Storage)
    client = boto3.client(
        "s3",
        endpoint_url=request.getfixturevalue("s3_endpoint"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )

    def s3_leftovers() -> set[str]:
        objects = client.list_objects_v2(Bucket=storage.bucket).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
        return {item["Key"] for item in objects} | {f"upload:{item['Key']}" for item in uploads}

    return s3_leftovers
