"""Advances workflow runs when their pipeline runs change state.

Subscribed to the API process's run events: runs in a task of its own after the
state change was committed, never in the request that reported it. Within one
process the workflow runs advance one at a time; across API replicas the
compare-and-set updates keep each step exactly-once.
"""

from __future__ import annotations

import asyncio

from workflow_service.db import Database
from workflow_service.runtime import Runtime
from workflow_service.workflows import repository, service


class WorkflowPropagator:
    def __init__(self, database: Database, runtime: Runtime) -> None:
        self._database = database
        self._runtime = runtime
        self._lock = asyncio.Lock()

    async def on_run_changed(self, pipeline_run_id: int) -> None:
        async with self._lock, self._database.sessions() as session:
            workflow_run_id = await repository.workflow_run_of(session, pipeline_run_id)
            if workflow_run_id is not None:
                await service.advance(session, self._runtime, workflow_run_id)
