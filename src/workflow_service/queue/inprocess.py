"""The embedded default: jobs run as asyncio tasks of the API process, a few at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from workflow_service.queue.base import JobFunction

logger = logging.getLogger(__name__)


class InProcessQueue:
    def __init__(self, job: JobFunction, context: dict[str, Any], concurrency: int) -> None:
        self._job = job
        self._context = context
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def enqueue(self, pipeline_uuid: str, run_uuid: str, attempt: int) -> None:
        if run_uuid in self._tasks:
            return
        task = asyncio.create_task(self._run(pipeline_uuid, run_uuid), name=f"run-{run_uuid}")
        self._tasks[run_uuid] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_uuid, None))

    async def _run(self, pipeline_uuid: str, run_uuid: str) -> None:
        async with self._slots:
            try:
                await self._job(self._context, pipeline_uuid, run_uuid)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run %s: job failed", run_uuid)

    async def abort(self, run_uuid: str, attempt: int) -> None:
        task = self._tasks.get(run_uuid)
        if task is not None:
            task.cancel()

    async def depth(self) -> int:
        return len(self._tasks)

    async def check(self) -> None:
        return None

    async def hold_lock(self, name: str, seconds: float) -> bool:
        return True  # one process: nobody to share with

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
