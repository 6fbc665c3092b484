"""Liveness (`/healthcheck`, the original's) and readiness (`/readyz`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from workflow_service.db import Database
from workflow_service.errors import error_body, error_responses
from workflow_service.runtime import Runtime
from workflow_service.worker import sandbox

CHECK_TIMEOUT_SECONDS = 3.0

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get(
    "/healthcheck",
    response_class=PlainTextResponse,
    summary="Liveness",
    description="Answers `OK` while the process serves requests. Needs no key.",
    responses={200: {"content": {"text/plain": {"example": "OK"}}}},
)
async def healthcheck() -> str:
    return "OK"


async def _check_database(database: Database) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _checks(request: Request) -> dict[str, Awaitable[str | None]]:
    """Each check raises when not ready, else returns its state in words (None: "ok")."""
    runtime: Runtime = request.app.state.runtime
    return {
        "database": _check_database(request.app.state.database),
        "queue": runtime.queue.check(),
        "storage": runtime.storage.check(),
        "sandbox": sandbox.readiness(runtime.settings),
    }


@router.get(
    "/readyz",
    summary="Readiness",
    description=(
        "Checks that the database, the queue (Redis, when configured) and the storage "
        "answer, each within 3 s, and reports whether runs are sandboxed (RUN_SANDBOX). "
        "503 names what failed. Needs no key."
    ),
    response_model=Readiness,
    responses=error_responses(503),
)
async def readyz(request: Request) -> Readiness | JSONResponse:
    checks = await _checks(request)
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS) for check in checks.values()),
        return_exceptions=True,
    )
    failed = {
        name: [f"{type(result).__name__}: {result}".strip().rstrip(":")[:500]]
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    }
    if failed:
        return JSONResponse(error_body("Not ready", failed), status_code=503)
    return Readiness(
        status="ready",
        checks={
            name: result if isinstance(result, str) else "ok"
            for name, result in zip(checks, results, strict=True)
        },
    )
