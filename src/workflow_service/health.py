"""Liveness (`/healthcheck`, the original's) and readiness (`/readyz`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from workflow_service.db import Database
from workflow_service.errors import error_body, error_responses

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


@router.get(
    "/readyz",
    summary="Readiness",
    description=(
        "Checks that the database answers (within 3 s). 503 names what failed. Needs no key."
    ),
    response_model=Readiness,
    responses=error_responses(503),
)
async def readyz(request: Request) -> Readiness | JSONResponse:
    database: Database = request.app.state.database
    try:
        await asyncio.wait_for(_check_database(database), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready", and says why
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        return JSONResponse(error_body("Not ready", {"database": [reason[:500]]}), status_code=503)
    return Readiness(status="ready", checks={"database": "ok"})
