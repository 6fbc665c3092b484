"""Creating, finding and revoking application keys.

Keys carry 256 random bits, so a fast SHA-256 (not a password hash) is the
right way to store them: the database row is found by the hash of the
presented key, and a leaked database reveals no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.auth.models import Application
from workflow_service.auth.scheme import Permission
from workflow_service.db import utcnow
from workflow_service.errors import NotFound
from workflow_service.pagination import Page
from workflow_service.schemas import is_hex_uuid

KEY_PREFIX = "wfs_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_application(
    session: AsyncSession, name: str, permissions: Iterable[Permission]
) -> tuple[Application, str]:
    """Store a new application; returns it with its key, which is never stored."""
    key = new_key()
    application = Application(
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[: len(KEY_PREFIX) + 4],
        permissions=sorted({permission.value for permission in permissions}),
    )
    session.add(application)
    await session.commit()
    return application, key


async def authenticate(session: AsyncSession, key: str) -> Application | None:
    """The live application holding ``key``, or None."""
    digest = hash_key(key)
    application = await session.scalar(
        select(Application).where(Application.key_hash == digest, Application.revoked_at.is_(None))
    )
    if application is None or not hmac.compare_digest(application.key_hash, digest):
        return None
    return application


async def any_application(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(Application.revoked_at.is_(None)))))


async def list_applications(session: AsyncSession, page: Page) -> Sequence[Application]:
    query = select(Application).where(Application.revoked_at.is_(None)).order_by(Application.id)
    if page.after_id is not None:
        query = query.where(Application.id > page.after_id)
    return (await session.scalars(query.limit(page.fetch_size()))).all()


async def revoke_application(session: AsyncSession, uuid: str) -> Application:
    application = (
        await session.scalar(
            select(Application).where(Application.uuid == uuid, Application.revoked_at.is_(None))
        )
        if is_hex_uuid(uuid)
        else None
    )
    if application is None:
        raise NotFound("Application not found")
    application.revoked_at = utcnow()
    await session.commit()
    return application


EMBEDDED_WORKER = "embedded worker"


async def replace_embedded_worker_key(session: AsyncSession) -> str:
    """A fresh PIPELINES_WORKER key for the in-process worker; earlier ones are revoked."""
    stale = await session.scalars(
        select(Application).where(
            Application.name == EMBEDDED_WORKER, Application.revoked_at.is_(None)
        )
    )
    for application in stale:
        application.revoked_at = utcnow()
    _, key = await create_application(session, EMBEDDED_WORKER, [Permission.PIPELINES_WORKER])
    return key
