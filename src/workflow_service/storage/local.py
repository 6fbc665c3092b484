"""Objects as files under a root folder (the embedded default)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from stat import S_ISREG
from typing import IO, ParamSpec, TypeVar

from workflow_service.storage.base import (
    CHUNK_SIZE,
    Digest,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredObject,
    prefix_key,
    validate_key,
)

P = ParamSpec("P")
T = TypeVar("T")

_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _open_temporary(path: Path) -> IO[bytes]:
    """A new file beside `path`, so that renaming it onto `path` is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=path.parent, prefix=".upload-", delete=False)


def _commit(file: IO[bytes], path: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    Path(file.name).replace(path)


def _discard(file: IO[bytes]) -> None:
    with suppress(OSError):
        file.close()
    Path(file.name).unlink(missing_ok=True)


async def _storing(key: str, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one write step in a worker thread; its OSError becomes a StorageError."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except OSError as exc:
        raise StorageError(f"cannot store {key!r}: {exc.strerror or exc}") from exc


class LocalStorage(Storage):
    """Objects are files under `root`; a key never reaches outside it, even by a symlink."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        """The resolved file of `key` (blocking: call it in a worker thread)."""
        path = (self.root / validate_key(key)).resolve()
        if path == self.root or not path.is_relative_to(self.root):
            raise InvalidKey(f"object key {key!r} resolves outside the storage root")
        return path

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        max_bytes: int | None = None,
    ) -> StoredObject:
        path = await asyncio.to_thread(self._path, key)
        digest = Digest(max_bytes)
        file = await _storing(key, _open_temporary, path)
        try:
            async for chunk in digest.feed(chunks):
                await _storing(key, file.write, chunk)
            await _storing(key, _commit, file, path)
        except BaseException:
            await asyncio.to_thread(_discard, file)
            raise
        return digest.stored(key, content_type)

    async def iter_chunks(
        self, key: str, chunk_size: int = CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        path = await asyncio.to_thread(self._path, key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except _MISSING:
            raise ObjectNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            file.close()

    async def stat(self, key: str) -> ObjectInfo | None:
        path = await asyncio.to_thread(self._path, key)
        try:
            result = await asyncio.to_thread(path.stat)
        except _MISSING:
            return None
        return ObjectInfo(size=result.st_size) if S_ISREG(result.st_mode) else None

    async def delete(self, key: str) -> None:
        path = await asyncio.to_thread(self._path, key)
        with suppress(*_MISSING):
            await asyncio.to_thread(path.unlink)

    async def delete_prefix(self, prefix: str) -> None:
        path = await asyncio.to_thread(self._path, prefix_key(prefix))
        with suppress(*_MISSING):
            await asyncio.to_thread(shutil.rmtree, path)

    async def presigned_url(self, key: str, filename: str) -> str | None:
        validate_key(key)
        return None

    async def check(self) -> None:
        def probe() -> None:
            with tempfile.TemporaryFile(dir=self.root):
                pass

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StorageUnavailable(
                f"storage folder {self.root} is not writable: {reason}"
            ) from exc

    async def ensure_ready(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StorageUnavailable(f"cannot create storage folder {self.root}: {reason}") from exc

    async def close(self) -> None:
        """Nothing to release."""
