"""Sends a running engine's console and progress to the API, at least once a second
while output flows and every HEARTBEAT_SECONDS otherwise (the run's heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from workflow_service.runs.schemas import ConsoleAppend, ConsoleChunk
from workflow_service.worker.api import WorkerApi

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
MAX_CHUNK_CHARS = 512 * 1024
STREAMS = ("std_out", "std_err")


class ConsoleReporter:
    def __init__(
        self,
        api: WorkerApi,
        pipeline_uuid: str,
        run_uuid: str,
        heartbeat_seconds: float,
        offsets: tuple[int, int] = (0, 0),
    ) -> None:
        self._api = api
        self._pipeline_uuid = pipeline_uuid
        self._run_uuid = run_uuid
        self._heartbeat_seconds = heartbeat_seconds
        self._pending = {name: "" for name in STREAMS}
        # An earlier attempt's console stays: this one appends after it.
        self._sent = dict(zip(STREAMS, offsets, strict=True))
        self._progress: int | None = None
        self._progress_sent: int | None = None
        self._last_report = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def write(self, stream: str, text: str) -> None:
        self._pending[stream] += text

    def progress(self, percent: int) -> None:
        self._progress = percent

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"console-{self._run_uuid}")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            due = time.monotonic() - self._last_report >= self._heartbeat_seconds
            if due or self._has_news():
                await self.flush()

    def _has_news(self) -> bool:
        return any(self._pending.values()) or self._progress != self._progress_sent

    async def flush(self) -> None:
        """Send what is pending; kept for the next try if the API cannot be reached."""
        async with self._lock:
            while True:
                chunks = {
                    name: ConsoleChunk(offset=self._sent[name], data=text[:MAX_CHUNK_CHARS])
                    for name, text in self._pending.items()
                    if text
                }
                report = ConsoleAppend(progress=self._progress, **chunks)
                try:
                    await self._api.report(self._pipeline_uuid, self._run_uuid, report)
                except Exception as exc:  # still failing after the client's retries
                    logger.warning("run %s: console report failed: %s", self._run_uuid, exc)
                    return
                self._last_report = time.monotonic()
                self._progress_sent = report.progress
                for name, chunk in chunks.items():
                    self._sent[name] += len(chunk.data)
                    self._pending[name] = self._pending[name][len(chunk.data) :]
                if not any(self._pending.values()):
                    return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._has_news():  # the final state follows at once: no heartbeat needed
            await self.flush()
