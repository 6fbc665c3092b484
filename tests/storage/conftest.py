"""A moto S3 server for the session, and the storage backends the tests run against."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import boto3
import pytest

from workflow_service.storage import LocalStorage, S3Storage, Storage


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
