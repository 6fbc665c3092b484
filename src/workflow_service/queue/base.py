from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

JobFunction = Callable[[dict[str, Any], str, str], Awaitable[None]]
"""``execute_run(ctx, pipeline_uuid, run_uuid)``: arq's job signature."""


class QueueUnavailable(Exception):
    """The queue cannot take or abort jobs now (Redis down); the message says why."""


def job_id(run_uuid: str, attempt: int) -> str:
    """One job per start of a run: the run uuid, then `<uuid>-<n>` for a retry."""
    return run_uuid if attempt == 0 else f"{run_uuid}-{attempt}"


class RunQueue(Protocol):
    async def enqueue(self, pipeline_uuid: str, run_uuid: str, attempt: int) -> None:
        """Hand the run to a worker (its ``attempt``-th start so far); enqueueing the same
        attempt twice is harmless."""

    async def abort(self, run_uuid: str, attempt: int) -> None:
        """Stop the run's job: before it starts, or by cancelling it while it runs."""

    async def hold_lock(self, name: str, seconds: float) -> bool:
        """Whether this process holds ``name`` for the next ``seconds`` (one reconciler
        among API replicas)."""

    async def depth(self) -> int:
        """Jobs in the queue, waiting or being executed (the /metrics queue depth)."""

    async def check(self) -> None:
        """Raise QueueUnavailable when the queue cannot be reached (readiness)."""

    async def close(self) -> None: ...
