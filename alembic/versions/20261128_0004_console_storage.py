"""Console columns stored uncompressed on PostgreSQL

Each console append rewrites its stream (up to MAX_CONSOLE_BYTES); with the default
pglz compression a 10 KB append to a full 1 MiB console cost ~31 ms of PostgreSQL
CPU, uncompressed ~8 ms (bench/api.py). SQLite has no such setting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("std_out", "std_err")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f"ALTER TABLE pipeline_run ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f"ALTER TABLE pipeline_run ALTER COLUMN {column} SET STORAGE EXTENDED")
