from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

JobFunction = Callable[[dict[str, Any], str, str], Awaitable[None]]
"""``execute_run(ctx, pipeline_uuid, run_uuid)``: arq's job signature."""


class QueueUnavailable(Exception):
    """The queue cannot take or abort jobs now (Redis down); the message says why."""


class RunQueue(Protocol):
    async def enqueue(self, pipeline_uuid: str, run_uuid: str) -> None:
        """Hand the run to a worker; enqueueing a run twice is harmless."""

    async def abort(self, run_uuid: str) -> None:
        """Stop the run's job: before it starts, or by cancelling it while it runs."""

    async def check(self) -> None:
        """Raise QueueUnavailable when the queue cannot be reached (readiness)."""

    async def close(self) -> None: ...
