"""The baseline of benchmark 3 (api.py): a bare FastAPI endpoint doing one primary-key
SELECT of a pipeline run through an SQLAlchemy async session.

It uses the service's own database layer (``create_database``: the same pool size,
pre-ping and asyncpg driver, ``DATABASE_URL`` from the environment) and the same
session dependency, without authentication, services or response models, so the
benchmark's ratio is what the API adds around the database. Served by uvicorn with
``--workers 2`` and no access log, like ``workflow-service serve``::

    uvicorn baseline_app:app --app-dir bench --workers 2 --no-access-log
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_service.db import Database, create_database
from workflow_service.runs.models import PipelineRun
from workflow_service.settings import load_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.database = create_database(load_settings())
    yield
    await app.state.database.dispose()


app = FastAPI(lifespan=lifespan)


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.sessions() as opened:
        yield opened


Session = Annotated[AsyncSession, Depends(session, scope="function")]


@app.get("/runs/{run_id}")
async def get_run(run_id: int, session: Session) -> dict[str, object]:
    run = await session.get(PipelineRun, run_id)
    if run is None:
        raise HTTPException(status_code=404)
    return {"uuid": run.uuid, "sequence": run.sequence, "state": run.state}
