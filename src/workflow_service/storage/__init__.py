"""Object storage for uploaded inputs and run artifacts: a local folder or an S3 bucket."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from workflow_service.settings import Settings
from workflow_service.storage.base import (
    CHUNK_SIZE,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredObject,
    content_disposition,
    validate_key,
)
from workflow_service.storage.local import LocalStorage
from workflow_service.storage.s3 import S3Storage

__all__ = [
    "CHUNK_SIZE",
    "InvalidKey",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectTooLarge",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "content_disposition",
    "create_storage",
    "validate_key",
]

DEFAULT_LOCAL_ROOT = Path("artifacts")


def _s3(settings: Settings, bucket: str) -> S3Storage:
    return S3Storage(
        bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region_name,
        access_key=settings.s3_access_key_id,
        secret_key=settings.s3_secret_access_key,
        presigned_timeout=settings.s3_presigned_timeout,
    )


def create_storage(settings: Settings) -> Storage:
    """The backend STORAGE_URL names: `s3://BUCKET`, `file:///abs/path` or a plain path.

    Unset, it is S3 (bucket S3_BUCKET) when S3_ENDPOINT_URL or S3_ACCESS_KEY_ID is
    set, else the folder ./artifacts. Anything else raises ValueError naming STORAGE_URL.
    """
    url = (settings.storage_url or "").strip()
    if not url:
        if settings.s3_endpoint_url or settings.s3_access_key_id:
            return _s3(settings, settings.s3_bucket)
        return LocalStorage(DEFAULT_LOCAL_ROOT)
    parts = urlsplit(url)
    if len(parts.scheme) < 2:  # no scheme, or a Windows drive letter
        return LocalStorage(Path(url))
    if (
        parts.scheme == "s3"
        and parts.netloc
        and parts.path in ("", "/")
        and not parts.query + parts.fragment
    ):
        return _s3(settings, parts.netloc)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return LocalStorage(Path(unquote(parts.path)))
    raise ValueError(
        f"invalid setting STORAGE_URL: {url!r} is not s3://BUCKET, file:///absolute/path "
        "or a folder path"
    )
