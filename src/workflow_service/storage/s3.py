"""Objects in an S3-compatible bucket, through one aioboto3 client kept for the backend's life."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from typing import TYPE_CHECKING, cast

import aioboto3  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from workflow_service.storage.base import (
    CHUNK_SIZE,
    Digest,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredObject,
    content_disposition,
    prefix_key,
    validate_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
MAX_PARTS_IN_FLIGHT = 2
CHECK_TIMEOUT_SECONDS = 3.0

_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_UNUSABLE = {
    "NoSuchBucket",
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}
_UNREACHABLE = (HTTPClientError, BotocoreConnectionError, IncompleteReadError, NoCredentialsError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _take(buffer: list[bytes]) -> bytes:
    """Join and empty `buffer`, so a yielded part is not kept twice."""
    part = b"".join(buffer)
    buffer.clear()
    return part


async def _parts(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Regroup chunks into parts of at least PART_SIZE bytes, then a last, shorter one
    if bytes remain. An empty stream gives one empty part."""
    buffer: list[bytes] = []
    buffered = 0
    yielded = False
    async for chunk in chunks:
        buffer.append(chunk)
        buffered += len(chunk)
        if buffered >= PART_SIZE:
            buffered = 0
            yielded = True
            yield _take(buffer)
    if buffered or not yielded:
        yield _take(buffer)


async def _reap(tasks: set[asyncio.Task[None]], until: str) -> set[asyncio.Task[None]]:
    """Wait for `tasks` (per asyncio.wait's `until`), raise the first failure, return the rest."""
    if not tasks:
        return tasks
    done, pending = await asyncio.wait(tasks, return_when=until)
    errors = [error for task in done if (error := task.exception()) is not None]
    if errors:
        raise errors[0]
    return pending


class S3Storage(Storage):
    """A bucket on AWS S3 or an S3-compatible server (path-style when `endpoint_url` is set)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        presigned_timeout: int = 604800,
    ) -> None:
        self.bucket = bucket
        self._endpoint_url = endpoint_url
        self._region = region
        self._where = f"S3 at {endpoint_url or 'AWS ' + region}"
        self._presigned_timeout = presigned_timeout
        # No keys: boto's usual chain (environment, profile, instance role).
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        # boto3 >= 1.36 adds CRC32 checksums by default, which several S3-compatible
        # servers refuse: on a custom endpoint, send them only where required.
        checksums = "when_required" if endpoint_url else "when_supported"
        self._config = AioConfig(
            signature_version="s3v4",  # presigned URLs too (botocore would sign them with v2)
            s3={"addressing_style": "path"} if endpoint_url else None,
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
        )
        # /readyz wants a prompt, precise answer, not retries with back-off.
        self._probe_config = self._config.merge(
            AioConfig(
                retries={"mode": "standard", "max_attempts": 1},
                connect_timeout=CHECK_TIMEOUT_SECONDS,
                read_timeout=CHECK_TIMEOUT_SECONDS,
            )
        )
        self._stack = AsyncExitStack()
        self._clients: dict[bool, S3Client] = {}
        self._clients_lock = asyncio.Lock()

    async def _s3(self, *, probe: bool = False) -> S3Client:
        """The backend's client (or the one `check` uses), opened on first use, kept until close."""
        async with self._clients_lock:
            if probe not in self._clients:
                config = self._probe_config if probe else self._config
                self._clients[probe] = await self._stack.enter_async_context(
                    self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
                )
            return self._clients[probe]

    @contextmanager
    def _translated(self, key: str) -> Iterator[None]:
        """Turn botocore's errors into the storage layer's."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _NOT_FOUND:
                raise ObjectNotFound(key) from exc
            message = error.get("Message") or code
            if code in _UNUSABLE:
                raise StorageUnavailable(f"S3 bucket {self.bucket}: {message}") from exc
            raise StorageError(f"S3 {code} on {key!r}: {message}") from exc
        except _UNREACHABLE as exc:
            raise StorageUnavailable(f"{self._where}: {_one_line(exc)}") from exc

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        max_bytes: int | None = None,
    ) -> StoredObject:
        validate_key(key)
        client = await self._s3()
        digest = Digest(max_bytes)
        with self._translated(key):
            await self._upload(client, key, content_type, _parts(digest.feed(chunks)))
        return digest.stored(key, content_type)

    async def _upload(
        self, client: S3Client, key: str, content_type: str, parts: AsyncIterator[bytes]
    ) -> None:
        """One PUT when the stream is shorter than a part, else a multipart upload with
        at most MAX_PARTS_IN_FLIGHT parts sent at a time and the next one read only when
        a slot is free. Any error or cancellation aborts the multipart upload."""
        upload_id: str | None = None
        completed: list[CompletedPartTypeDef] = []
        sending: set[asyncio.Task[None]] = set()

        async def send(upload_id: str, number: int, body: io.BytesIO) -> None:
            response = await client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            completed.append({"ETag": response["ETag"], "PartNumber": number})

        try:
            number = 0
            async for body in parts:
                number += 1
                if number > MAX_PARTS:
                    raise ObjectTooLarge(f"more than {MAX_PARTS} parts of {PART_SIZE} bytes")
                if upload_id is None:
                    if len(body) < PART_SIZE:  # a short first part is the whole stream
                        await client.put_object(
                            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
                        )
                        return
                    upload = await client.create_multipart_upload(
                        Bucket=self.bucket, Key=key, ContentType=content_type
                    )
                    upload_id = upload["UploadId"]
                # Hand the part over in a BytesIO and drop our reference: aiohttp copies
                # the buffer once, then the original is freed. (botocore wraps bytes in a
                # BytesIO too, but then this frame would keep the original alive.)
                sending.add(asyncio.create_task(send(upload_id, number, io.BytesIO(body))))
                del body
                while len(sending) >= MAX_PARTS_IN_FLIGHT:
                    sending = await _reap(sending, asyncio.FIRST_COMPLETED)
            sending = await _reap(sending, asyncio.FIRST_EXCEPTION)
            assert upload_id is not None  # _parts yields at least one part
            completed.sort(key=lambda part: part["PartNumber"])
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": completed},
            )
        except BaseException:
            for task in sending:
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)
            if upload_id is not None:
                with suppress(Exception):  # the original error is the one to report
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
            raise

    async def iter_chunks(
        self, key: str, chunk_size: int = CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        validate_key(key)
        client = await self._s3()
        with self._translated(key):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            stream = response["Body"]
            async with stream:
                async for chunk in stream.iter_chunks(chunk_size):
                    yield chunk

    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        client = await self._s3()
        try:
            with self._translated(key):
                response = await client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        return ObjectInfo(size=response["ContentLength"])

    async def delete(self, key: str) -> None:
        validate_key(key)
        client = await self._s3()
        with self._translated(key):
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> None:
        prefix = prefix_key(prefix) + "/"
        client = await self._s3()
        with self._translated(prefix):
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            async for page in pages:
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not objects:
                    continue
                response = await client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                if errors := response.get("Errors"):
                    first = errors[0]
                    raise StorageError(
                        f"S3 could not delete {len(errors)} objects under {prefix!r}, "
                        f"e.g. {first.get('Key')!r}: {first.get('Message')}"
                    )

    async def presigned_url(self, key: str, filename: str) -> str | None:
        validate_key(key)
        client = await self._s3()
        with self._translated(key):
            return await client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=self._presigned_timeout,
            )

    async def check(self) -> None:
        """head_bucket within CHECK_TIMEOUT_SECONDS; any failure is StorageUnavailable."""
        try:
            client = await self._s3(probe=True)
            with self._translated(""):
                await asyncio.wait_for(
                    client.head_bucket(Bucket=self.bucket), CHECK_TIMEOUT_SECONDS
                )
        except StorageUnavailable:
            raise
        except ObjectNotFound:
            raise StorageUnavailable(f"S3 bucket {self.bucket} does not exist") from None
        except StorageError as exc:
            raise StorageUnavailable(str(exc)) from exc
        except TimeoutError:
            raise StorageUnavailable(
                f"{self._where}: bucket {self.bucket} did not answer within "
                f"{CHECK_TIMEOUT_SECONDS:g} s"
            ) from None

    async def ensure_ready(self) -> None:
        """Create the bucket unless it exists (us-east-1 takes no LocationConstraint)."""
        client = await self._s3()
        try:
            with self._translated(""):
                await client.head_bucket(Bucket=self.bucket)
            return
        except ObjectNotFound:
            pass
        with self._translated(""):
            try:
                if self._region == "us-east-1":
                    await client.create_bucket(Bucket=self.bucket)
                else:
                    await client.create_bucket(
                        Bucket=self.bucket,
                        CreateBucketConfiguration={
                            "LocationConstraint": cast("BucketLocationConstraintType", self._region)
                        },
                    )
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass  # created meanwhile by another process

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
