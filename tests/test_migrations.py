"""One alembic history: upgrades an empty PostgreSQL and SQLite to head, downgrades
back to base, and matches the models (no autogenerate drift)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import require_postgres
from workflow_service import db
from workflow_service.models import Base
from workflow_service.settings import Settings


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database of its own (the shared one stays migrated)."""
    base = make_url(require_postgres())
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("empty_postgres"))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_head_matches_models_and_downgrade_base_empties(
    empty_database_url: str,
) -> None:
    settings = Settings(database_url=empty_database_url)
    database = db.create_database(settings)
    try:
        await db.upgrade(database, settings.database_url, "head")
        current, head = await db.revisions(database, settings.database_url)
        assert current == head is not None
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(_tables)
            assert {table.name for table in Base.metadata.sorted_tables} <= tables
            assert await connection.run_sync(_drift) == []

        await db.downgrade(database, settings.database_url, "base")
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        assert (await db.revisions(database, settings.database_url))[0] is None

        await db.upgrade(database, settings.database_url, "head")
        assert (await db.revisions(database, settings.database_url))[0] == head
    finally:
        await database.dispose()


async def test_postgres_console_columns_are_stored_uncompressed(empty_postgres: str) -> None:
    settings = Settings(database_url=empty_postgres)
    database = db.create_database(settings)
    try:
        await db.upgrade(database, settings.database_url, "head")
        async with database.engine.connect() as connection:
            storage = dict(
                (
                    await connection.exec_driver_sql(
                        "SELECT attname, attstorage::text FROM pg_attribute WHERE attrelid = "
                        "'pipeline_run'::regclass AND attname IN ('std_out', 'std_err')"
                    )
                ).all()
            )
        assert storage == {"std_out": "e", "std_err": "e"}  # EXTERNAL: no pglz per append
    finally:
        await database.dispose()


async def test_postgres_not_at_head_is_refused_with_instructions(empty_postgres: str) -> None:
    settings = Settings(database_url=empty_postgres)
    database = db.create_database(settings)
    try:
        with pytest.raises(db.SchemaNotCurrent, match="workflow-service migrate"):
            await db.prepare_schema(database, settings)
    finally:
        await database.dispose()


async def test_sqlite_is_migrated_on_prepare(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    database = db.create_database(settings)
    try:
        await db.prepare_schema(database, settings)
        current, head = await db.revisions(database, settings.database_url)
        assert current == head is not None
    finally:
        await database.dispose()
