"""The storage interface, its errors, and the helpers both backends share."""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

CHUNK_SIZE = 1024 * 1024
MAX_KEY_BYTES = 1024


class StorageError(Exception):
    """Base of every error the storage layer raises."""


class ObjectNotFound(StorageError):
    """No object has this key."""


class ObjectTooLarge(StorageError):
    """A stream brought more bytes than its cap; nothing was stored."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or used; the message is one line saying why."""


class InvalidKey(StorageError, ValueError):
    """The key is not a safe `/`-separated object name."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int


class Storage(ABC):
    """An object store. Keys are `/`-separated names checked by `validate_key`."""

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Upload a local file in one bounded-memory pass that also hashes it."""
        async with aclosing(file_chunks(path)) as chunks:
            return await self.put_stream(key, chunks, content_type)

    @abstractmethod
    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        max_bytes: int | None = None,
    ) -> StoredObject:
        """Store a stream; more than `max_bytes` raises ObjectTooLarge and stores nothing."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
        """Stream an object; ObjectNotFound is raised by the first iteration."""

    async def download_to(self, key: str, path: Path) -> int:
        """Write an object to a local file; returns the bytes written."""
        async with aclosing(self.iter_chunks(key)) as chunks:
            return await save_chunks(chunks, path)

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, or None if there is no such object."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete an object; a missing key is not an error."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix/` (given with or without the trailing `/`)."""

    @abstractmethod
    async def presigned_url(self, key: str, filename: str) -> str | None:
        """A time-limited download URL, or None when downloads go through the API."""

    @abstractmethod
    async def check(self) -> None:
        """Raise StorageUnavailable if the backend cannot be used (for /readyz)."""

    @abstractmethod
    async def ensure_ready(self) -> None:
        """Create the folder or bucket if it is missing (at start-up)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the backend holds."""


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative `/`-separated name, else raise InvalidKey."""
    if not key:
        raise InvalidKey("empty object key")
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        raise InvalidKey("object key is not valid Unicode") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"object key longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} starts with '/'")
    if "\\" in key or any(unicodedata.category(char) == "Cc" for char in key):
        raise InvalidKey(f"object key {key!r} contains a backslash or a control character")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' segment")
    return key


def prefix_key(prefix: str) -> str:
    """The validated key path of a `delete_prefix` argument, without its trailing `/`."""
    return validate_key(prefix.removesuffix("/"))


def content_disposition(filename: str) -> str:
    """An RFC 6266 `attachment` header value that is safe whatever `filename` holds.

    Only the last path segment is kept. The quoted `filename` is an ASCII fallback
    (accents stripped; quotes, backslashes and control characters dropped);
    `filename*` carries the full UTF-8 name percent-encoded.
    """
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char) != "Cc").strip()
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = "".join(char for char in ascii_name if char not in '"\\').strip()
    if not fallback or fallback.startswith("."):
        fallback = "download" + fallback
    encoded = quote(name or fallback, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


class Digest:
    """Size and SHA-256 of the bytes passing through `feed`, with an optional cap."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.size = 0
        self._max_bytes = max_bytes
        self._sha256 = hashlib.sha256()

    async def feed(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.size += len(chunk)
            if self._max_bytes is not None and self.size > self._max_bytes:
                raise ObjectTooLarge(f"more than {self._max_bytes} bytes")
            if len(chunk) > CHUNK_SIZE:  # hashlib releases the GIL: keep the loop free
                await asyncio.to_thread(self._sha256.update, chunk)
            else:
                self._sha256.update(chunk)
            yield chunk

    def stored(self, key: str, content_type: str) -> StoredObject:
        return StoredObject(key, self.size, self._sha256.hexdigest(), content_type)


async def file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
    """Read a local file in chunks, each read in a worker thread."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, chunk_size):
            yield chunk
    finally:
        file.close()


async def save_chunks(chunks: AsyncIterator[bytes], path: Path) -> int:
    """Write chunks to a local file (writes in a worker thread); removes it on failure."""
    file = await asyncio.to_thread(path.open, "wb")
    written = 0
    try:
        async for chunk in chunks:
            await asyncio.to_thread(file.write, chunk)
            written += len(chunk)
        await asyncio.to_thread(file.close)
    except BaseException:
        file.close()
        with suppress(OSError):
            await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return written
