"""Alembic environment: one history for PostgreSQL (asyncpg) and SQLite (aiosqlite).

The service passes an open connection through ``config.attributes`` (it may
already run an event loop); the ``alembic`` command line gets none and opens
its own async engine from DATABASE_URL.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from workflow_service.models import Base
from workflow_service.settings import load_settings

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_command_line() -> None:
    engine = create_async_engine(load_settings().database_url)
    async with engine.begin() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


if config.config_file_name is not None:
    fileConfig(config.config_file_name)

given = config.attributes.get("connection")
if given is not None:
    run_with(given)
else:
    asyncio.run(run_from_command_line())
