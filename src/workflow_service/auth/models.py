from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from workflow_service.auth.scheme import Permission
from workflow_service.db import Base, TimestampedMixin, UTCDateTime


class Application(TimestampedMixin, Base):
    """An API client. Its key is shown once at creation; only its SHA-256 is kept."""

    __tablename__ = "application"

    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))
    permissions: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def has(self, permission: Permission) -> bool:
        return permission.value in self.permissions
