"""What the API process runs beside its routes: storage, queue, callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from workflow_service.queue import RunQueue
from workflow_service.runs.callbacks import CallbackDispatcher
from workflow_service.settings import Settings
from workflow_service.storage import Storage

logger = logging.getLogger(__name__)


RunListener = Callable[[int], Coroutine[Any, Any, None]]


class RunEvents:
    """Tells listeners (the workflow logic) that a run changed state: after the commit, in
    tasks of their own, never inside the request that reported the change."""

    def __init__(self) -> None:
        self._listeners: list[RunListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, listener: RunListener) -> None:
        self._listeners.append(listener)

    def publish(self, run_id: int) -> None:
        for listener in self._listeners:
            task = asyncio.create_task(listener(run_id))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("run state listener failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    queue: RunQueue
    callbacks: CallbackDispatcher
    events: RunEvents = field(default_factory=RunEvents)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
