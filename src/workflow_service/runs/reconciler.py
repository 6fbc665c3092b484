"""No run is lost: a periodic task of the API process (one replica at a time).

Each pass:
- a RUNNING run whose worker sent nothing for HEARTBEAT_TIMEOUT_SECONDS lost its
  worker: it is handed back (NOT_STARTED) and enqueued again while it has attempts
  left (RUN_MAX_ATTEMPTS), else it ends FAILED "worker lost";
- a NOT_STARTED run idle for a pass is enqueued again (the queue ignores it when it
  holds it already): Redis was down or flushed, or the run was handed back;
- an unfinished workflow run is advanced (a propagation lost with an API restart).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from workflow_service.db import Database, utcnow
from workflow_service.errors import BadRequest
from workflow_service.runs import repository, service
from workflow_service.runs.models import PipelineRun
from workflow_service.runs.schemas import StateUpdate
from workflow_service.runs.states import RunState
from workflow_service.runtime import Runtime
from workflow_service.workflows.repository import unfinished_workflow_runs
from workflow_service.workflows.service import advance

logger = logging.getLogger(__name__)

BATCH = 200
LOCK = "reconciler"


class Reconciler:
    def __init__(self, database: Database, runtime: Runtime) -> None:
        self._database = database
        self._runtime = runtime

    async def run_forever(self) -> None:
        interval = self._runtime.settings.reconcile_seconds
        while True:
            try:
                if await self._runtime.queue.hold_lock(LOCK, interval * 3):
                    await self.reconcile()
            except Exception:  # a pass that fails (database down) is tried again later
                logger.exception("reconciler pass failed")
            await asyncio.sleep(interval)

    async def reconcile(self) -> None:
        async with self._database.sessions() as session:
            await self._recover_lost(session)
        async with self._database.sessions() as session:
            await self._enqueue_waiting(session)
        await self._advance_workflows()

    async def _recover_lost(self, session: AsyncSession) -> None:
        settings = self._runtime.settings
        silent_since = utcnow() - timedelta(seconds=settings.heartbeat_timeout_seconds)
        lost = (
            await session.scalars(
                select(PipelineRun)
                .where(
                    PipelineRun.state == RunState.RUNNING.value,
                    PipelineRun.heartbeat_at < silent_since,
                )
                .options(*repository.FULL_RUN, selectinload(PipelineRun.pipeline))
                .limit(BATCH)
            )
        ).all()
        addresses = [(run.pipeline.uuid, run.uuid, run.attempt) for run in lost]
        for pipeline_uuid, run_uuid, attempt in addresses:
            reason = (
                f"worker lost: no heartbeat for {settings.heartbeat_timeout_seconds:g} s "
                f"(attempt {attempt} of {settings.run_max_attempts})"
            )
            update = (
                StateUpdate(state=RunState.NOT_STARTED)
                if attempt < settings.run_max_attempts
                else StateUpdate(state=RunState.FAILED, failure_reason=reason)
            )
            logger.warning("run %s: %s; now %s", run_uuid, reason, update.state.value)
            try:
                pipeline, run = await service.get_run(session, pipeline_uuid, run_uuid)
                run = await service.change_state(session, self._runtime, pipeline, run, update)
            except BadRequest:  # it moved meanwhile: a late heartbeat, a cancel
                continue
            if RunState(run.state) is RunState.NOT_STARTED:
                await service.enqueue(self._runtime, pipeline, run)

    async def _enqueue_waiting(self, session: AsyncSession) -> None:
        idle_since = utcnow() - timedelta(seconds=self._runtime.settings.reconcile_seconds)
        waiting = (
            await session.scalars(
                select(PipelineRun)
                .where(
                    PipelineRun.state == RunState.NOT_STARTED.value,
                    PipelineRun.updated_at < idle_since,
                    PipelineRun.is_deleted.is_(False),
                )
                .options(selectinload(PipelineRun.pipeline))
                .order_by(PipelineRun.id)
                .limit(BATCH)
            )
        ).all()
        for run in waiting:
            await service.enqueue(self._runtime, run.pipeline, run)

    async def _advance_workflows(self) -> None:
        async with self._database.sessions() as session:
            unfinished = await unfinished_workflow_runs(session, BATCH)
        for workflow_run_id in unfinished:
            async with self._database.sessions() as session:
                await advance(session, self._runtime, workflow_run_id)
