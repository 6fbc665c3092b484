"""Database engine, session, declarative base and migrations.

One code path serves PostgreSQL (asyncpg) and the embedded SQLite file
(aiosqlite). Times are stored in UTC on both (SQLite keeps no offset).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, String, TypeDecorator, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workflow_service.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


CONNECT_TIMEOUT_SECONDS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    """A public identifier: 32 lowercase hex characters, as in the v1 API."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite drops offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampedMixin:
    """Integer key for joins, public hex uuid, creation and update times."""

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_database(settings: Settings) -> Database:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            # An unreachable database answers 503 in seconds, not after asyncpg's 60 s.
            connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
        )
    return Database(engine, async_sessionmaker(engine, expire_on_commit=False))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.sessions() as session:
        yield session


# Closed when the endpoint returns, not after the response is sent, so a
# request holds its connection no longer than it needs (STACK-NOTES).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def migrations_folder() -> Path:
    """The alembic scripts: inside a built wheel, else at the repository root."""
    packaged = resources.files("workflow_service") / "alembic"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, database_url: str, revision: str) -> None:
    command.upgrade(alembic_config(database_url, connection), revision)


def _downgrade(connection: Connection, database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url, connection), revision)


def _revisions(connection: Connection, database_url: str) -> tuple[str | None, str | None]:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    current = MigrationContext.configure(connection).get_current_revision()
    return current, script.get_current_head()


async def upgrade(database: Database, database_url: str, revision: str = "head") -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade, database_url, revision)


async def downgrade(database: Database, database_url: str, revision: str = "base") -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_downgrade, database_url, revision)


async def revisions(database: Database, database_url: str) -> tuple[str | None, str | None]:
    """(current revision of the database, head of the scripts)."""
    async with database.engine.connect() as connection:
        return await connection.run_sync(_revisions, database_url)


class SchemaNotCurrent(Exception):
    """The database is not at the migrations' head; the message says what to run."""


async def prepare_schema(database: Database, settings: Settings) -> None:
    """Bring the embedded SQLite file to head; require a migrated PostgreSQL.

    A PostgreSQL database is migrated by one explicit step (`workflow-service
    migrate`, the compose file's migration service), never by each replica.
    """
    if settings.is_sqlite:
        await upgrade(database, settings.database_url)
        return
    current, head = await revisions(database, settings.database_url)
    if current != head:
        raise SchemaNotCurrent(
            f"database is at revision {current or 'none'}, this version needs {head}: "
            "run `workflow-service migrate`"
        )
