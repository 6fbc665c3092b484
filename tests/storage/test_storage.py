"""The storage backends: the same behaviour on a local folder and on S3 (moto's server)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from workflow_service.settings import Settings
from workflow_service.storage import (
    InvalidKey,
    LocalStorage,
    ObjectNotFound,
    ObjectTooLarge,
    S3Storage,
    Storage,
    StorageUnavailable,
    content_disposition,
    create_storage,
)
from workflow_service.storage.s3 import PART_SIZE

MIB = 1024 * 1024
Leftovers = Callable[[], set[str]]
MakeS3 = Callable[..., S3Storage]


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(storage: Storage, key: str, chunk_size: int = MIB) -> bytes:
    return b"".join([chunk async for chunk in storage.iter_chunks(key, chunk_size)])


@pytest.mark.parametrize("size", [0, 1, 300_000])
async def test_put_file_round_trip(
    storage: Storage, tmp_path: Path, size: int, leftovers: Leftovers
) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    key = "pipeline/run/artifact-out.csv"

    stored = await storage.put_file(key, source, "text/csv")

    assert (stored.key, stored.size, stored.content_type) == (key, size, "text/csv")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(storage, key, chunk_size=100_000) == data
    target = tmp_path / "copy.bin"
    assert await storage.download_to(key, target) == size
    assert target.read_bytes() == data
    info = await storage.stat(key)
    assert info is not None and info.size == size
    assert leftovers() == {key}


@pytest.mark.parametrize("size", [PART_SIZE, 2 * PART_SIZE + 12345], ids=["1-part", "3-parts"])
async def test_put_stream_of_whole_parts(storage: Storage, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)

    stored = await storage.put_stream("p/r/a-big.bin", chunked(data, 100_000), "x/y")

    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await storage.download_to("p/r/a-big.bin", tmp_path / "big") == len(data)
    assert (tmp_path / "big").read_bytes() == data


async def test_put_replaces_an_object(storage: Storage) -> None:
    await storage.put_stream("k", chunked(b"old contents"), "text/plain")
    await storage.put_stream("k", chunked(b"new"), "text/plain")
    assert await read_all(storage, "k") == b"new"


@pytest.mark.parametrize("size", [1000, PART_SIZE + 1000], ids=["one-part", "multipart"])
async def test_put_stream_over_max_bytes_stores_nothing(
    storage: Storage, size: int, leftovers: Leftovers
) -> None:
    data = os.urandom(size)
    with pytest.raises(ObjectTooLarge):
        await storage.put_stream("a/too-big", chunked(data, 256 * 1024), "x/y", max_bytes=size - 1)
    assert await storage.stat("a/too-big") is None
    assert leftovers() == set()

    stored = await storage.put_stream("a/fits", chunked(data), "x/y", max_bytes=size)
    assert stored.size == size


@pytest.mark.parametrize("size", [1000, PART_SIZE + 1000], ids=["one-part", "multipart"])
async def test_failing_or_cancelled_stream_stores_nothing(
    storage: Storage, size: int, leftovers: Leftovers
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        async for chunk in chunked(os.urandom(size), 256 * 1024):
            yield chunk
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await storage.put_stream("a/broken", failing(), "x/y")
    assert leftovers() == set()

    stalled = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        async for chunk in chunked(os.urandom(size), 256 * 1024):
            yield chunk
        stalled.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(storage.put_stream("a/cancelled", stalling(), "x/y"))
    await stalled.wait()
    await asyncio.sleep(0.2)  # let the first part reach the server
    if isinstance(storage, LocalStorage):
        assert len(leftovers()) == 1  # the temporary file
    elif size > PART_SIZE:
        assert leftovers() == {"upload:a/cancelled"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers() == set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_missing_key(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        await read_all(storage, "no/such/key")
    target = tmp_path / "target"
    with pytest.raises(ObjectNotFound):
        await storage.download_to("no/such/key", target)
    assert not target.exists()
    assert await storage.stat("no/such/key") is None
    await storage.delete("no/such/key")
    await storage.delete_prefix("no/such")


async def test_delete_and_delete_prefix(storage: Storage, leftovers: Leftovers) -> None:
    for key in ["p/r1/a", "p/r1/sub/b", "p/r10/c", "p/r2/d", "p/e"]:
        await storage.put_stream(key, chunked(key.encode()), "text/plain")

    await storage.delete("p/e")
    await storage.delete_prefix("p/r1")
    assert leftovers() == {"p/r10/c", "p/r2/d"}

    await storage.delete_prefix("p/r2/")
    assert leftovers() == {"p/r10/c"}


INVALID_KEYS = [
    "",
    "../x",
    "a/../../x",
    "/abs",
    "a//b",
    "a/./b",
    "a/b/",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "a" * 2000,
]


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_refused(storage: Storage, key: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    with pytest.raises(InvalidKey):
        await storage.put_file(key, source, "x/y")
    with pytest.raises(InvalidKey):
        await storage.put_stream(key, chunked(b"x"), "x/y")
    with pytest.raises(InvalidKey):
        await read_all(storage, key)
    with pytest.raises(InvalidKey):
        await storage.download_to(key, tmp_path / "target")
    with pytest.raises(InvalidKey):
        await storage.stat(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.presigned_url(key, "name")
    if key not in ("a/b/",):  # a prefix may end with "/"
        with pytest.raises(InvalidKey):
            await storage.delete_prefix(key)


async def test_local_refuses_symlinks_out_of_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    storage = LocalStorage(tmp_path / "objects")
    await storage.ensure_ready()
    (storage.root / "dir-link").symlink_to(outside, target_is_directory=True)
    (storage.root / "file-link").symlink_to(outside / "secret")

    for key in ["dir-link/secret", "dir-link/new", "file-link"]:
        with pytest.raises(InvalidKey):
            await read_all(storage, key)
        with pytest.raises(InvalidKey):
            await storage.put_stream(key, chunked(b"overwritten"), "x/y")
        with pytest.raises(InvalidKey):
            await storage.stat(key)
        with pytest.raises(InvalidKey):
            await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.delete_prefix("dir-link")
    assert sorted(path.name for path in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


HOSTILE_NAME = '../../etc/pass"wd\r\n.csv'
UNICODE_NAME = "Überschuß データ €.csv"


def test_content_disposition() -> None:
    assert content_disposition(HOSTILE_NAME) == (
        "attachment; filename=\"passwd.csv\"; filename*=UTF-8''pass%22wd.csv"
    )
    assert content_disposition(UNICODE_NAME) == (
        'attachment; filename="Uberschu  .csv"; '
        "filename*=UTF-8''%C3%9Cberschu%C3%9F%20%E3%83%87%E3%83%BC%E3%82%BF%20%E2%82%AC.csv"
    )
    assert content_disposition("データ.csv").startswith('attachment; filename="download.csv";')
    assert content_disposition("plain name.txt") == (
        "attachment; filename=\"plain name.txt\"; filename*=UTF-8''plain%20name.txt"
    )


@pytest.mark.parametrize("filename", [HOSTILE_NAME, UNICODE_NAME])
async def test_s3_presigned_url_downloads_with_a_safe_filename(
    s3_endpoint: str, make_s3: MakeS3, filename: str
) -> None:
    storage = make_s3(s3_endpoint)
    await storage.ensure_ready()
    data = os.urandom(5000)
    await storage.put_stream("p/r/a-out.csv", chunked(data), "text/csv")

    url = await storage.presigned_url("p/r/a-out.csv", filename)

    assert url is not None and "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-disposition"] == content_disposition(filename)


async def test_local_presigned_url_is_none(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert await storage.presigned_url("a/b", "b.csv") is None


async def test_check_passes_on_a_live_backend(storage: Storage) -> None:
    await storage.check()


async def test_check_fails_fast_on_a_closed_port(make_s3: MakeS3) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before use: nothing listens
    storage = make_s3(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="Could not connect") as caught:
        await storage.check()
    assert time.monotonic() - started < 5
    assert "\n" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_check_fails_on_a_missing_local_root(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable, match="not writable"):
        await LocalStorage(tmp_path / "missing").check()


async def test_ensure_ready_creates_the_bucket(s3_endpoint: str, make_s3: MakeS3) -> None:
    storage = make_s3(s3_endpoint, "fresh-bucket")
    with pytest.raises(StorageUnavailable, match="fresh-bucket does not exist"):
        await storage.check()
    await storage.ensure_ready()
    await storage.check()
    await storage.ensure_ready()  # already there: no error


async def test_ensure_ready_creates_the_local_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "a" / "b")
    await storage.ensure_ready()
    await storage.check()


@pytest.fixture
def no_storage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["STORAGE_URL", "S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_BUCKET"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_storage_environment")
@pytest.mark.parametrize(
    ("options", "bucket", "root"),
    [
        ({"storage_url": "s3://my-bucket"}, "my-bucket", None),
        ({"storage_url": "s3://my-bucket/", "s3_bucket": "other"}, "my-bucket", None),
        ({"storage_url": "file:///srv/objects"}, None, "/srv/objects"),
        ({"storage_url": "file:///srv/with%20space"}, None, "/srv/with space"),
        ({"storage_url": "/srv/plain"}, None, "/srv/plain"),
        ({"storage_url": "relative/dir", "s3_endpoint_url": "http://x"}, None, "relative/dir"),
        ({"s3_endpoint_url": "http://127.0.0.1:9000"}, "workflow-service", None),
        ({"s3_access_key_id": "AKIA", "s3_bucket": "mine"}, "mine", None),
        ({}, None, "artifacts"),
        ({"storage_url": ""}, None, "artifacts"),
    ],
)
def test_create_storage_choice(
    options: dict[str, str], bucket: str | None, root: str | None
) -> None:
    storage = create_storage(Settings(**options))
    if bucket is not None:
        assert isinstance(storage, S3Storage) and storage.bucket == bucket
    else:
        assert isinstance(storage, LocalStorage)
        assert storage.root == Path(root or "").resolve()


@pytest.mark.usefixtures("no_storage_environment")
@pytest.mark.parametrize(
    "url",
    ["gs://bucket", "s3://", "s3://bucket/prefix", "file://host/x", "file:relative", "http://x"],
)
def test_create_storage_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="STORAGE_URL") as caught:
        create_storage(Settings(storage_url=url))
    assert "\n" not in str(caught.value)


BIG_MIB = 200
RSS_LIMIT_MIB = 64


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, bytes]:
    """A 200 MiB file of one random MiB repeated, and that MiB."""
    block = os.urandom(MIB)
    path = tmp_path / "big.bin"
    with path.open("wb") as file:
        for _ in range(BIG_MIB):
            file.write(block)
    return path, block


def _rss_baseline_kib() -> int:
    """Reset the process's peak RSS (Linux: /proc/self/clear_refs) and return the current
    RSS, so that ru_maxrss afterwards minus this is the peak growth of what runs between.
    Without the reset, the baseline is the old peak (the plain ru_maxrss delta)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def test_200_mib_uploads_to_s3_keep_memory_bounded(
    s3_endpoint: str, make_s3: MakeS3, big_file: tuple[Path, bytes]
) -> None:
    path, block = big_file
    expected = hashlib.sha256()
    for _ in range(BIG_MIB):
        expected.update(block)
    storage = make_s3(s3_endpoint)
    await storage.ensure_ready()
    await storage.put_stream("warm-up", chunked(b"x"), "x/y")  # opens the client

    async def body() -> AsyncIterator[bytes]:
        for _ in range(BIG_MIB):
            yield block

    uploads = {
        "put_file": lambda: storage.put_file("big/file", path, "application/octet-stream"),
        "put_stream": lambda: storage.put_stream("big/stream", body(), "application/octet-stream"),
    }
    for name, upload in uploads.items():
        baseline = _rss_baseline_kib()
        started = time.perf_counter()
        stored = await upload()
        elapsed = time.perf_counter() - started
        growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
        print(
            f"{name}: {BIG_MIB} MiB in {elapsed:.2f} s = {BIG_MIB / elapsed:.0f} MiB/s, "
            f"peak RSS growth {growth_mib:.1f} MiB"
        )
        assert stored.size == BIG_MIB * MIB
        assert stored.sha256 == expected.hexdigest()
        info = await storage.stat(stored.key)
        assert info is not None and info.size == BIG_MIB * MIB
        assert growth_mib < RSS_LIMIT_MIB, f"{name} grew the RSS by {growth_mib:.1f} MiB"
        await storage.delete(stored.key)
