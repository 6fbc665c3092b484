"""State-change callbacks: POST {"pipeline_run_uuid", "state"} to a run's callback_url.

Sent off the request path by a dispatcher in the API process: in order per run,
retried with exponential back-off, signed per Standard Webhooks when
WEBHOOK_SECRET is set (headers webhook-id, webhook-timestamp, webhook-signature),
through the outbound guard (no private addresses unless
CALLBACK_URL_ALLOW_PRIVATE). A slow or dead receiver delays only its own run's
later callbacks, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import stamina
from standardwebhooks.webhooks import Webhook

from workflow_service.db import new_uuid

logger = logging.getLogger(__name__)

ATTEMPTS = 6
TOTAL_SECONDS = 120.0


@dataclass(frozen=True)
class Callback:
    url: str
    body: dict[str, str]


class ReceiverError(Exception):
    """The receiver answered 5xx or 429: worth another try."""


class CallbackDispatcher:
    def __init__(self, client: httpx.AsyncClient, secret: str | None) -> None:
        self._client = client
        self._webhook = Webhook(secret) if secret else None
        self._queues: dict[str, asyncio.Queue[Callback]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    def notify(self, key: str, callback: Callback) -> None:
        """Queue ``callback`` behind earlier ones with the same ``key`` (the run's uuid)."""
        queue = self._queues.setdefault(key, asyncio.Queue())
        queue.put_nowait(callback)
        if key not in self._drains:
            task = asyncio.create_task(self._drain(key, queue), name=f"callbacks-{key}")
            self._drains[key] = task

    async def _drain(self, key: str, queue: asyncio.Queue[Callback]) -> None:
        try:
            while not queue.empty():
                callback = queue.get_nowait()
                try:
                    await self._deliver(callback)
                except Exception as exc:  # a receiver's failure is logged, never raised
                    logger.warning("callback to %s failed for good: %s", callback.url, exc)
        finally:
            self._drains.pop(key, None)
            if queue.empty():
                self._queues.pop(key, None)

    async def _deliver(self, callback: Callback) -> None:
        payload = json.dumps(callback.body)
        message_id = f"msg_{new_uuid()}"
        async for attempt in stamina.retry_context(
            on=(httpx.TransportError, ReceiverError),
            attempts=ATTEMPTS,
            timeout=TOTAL_SECONDS,
            wait_initial=0.2,
            wait_max=15.0,
        ):
            with attempt:
                headers = {"Content-Type": "application/json"}
                if self._webhook is not None:
                    now = datetime.now(UTC)
                    headers["webhook-id"] = message_id
                    headers["webhook-timestamp"] = str(int(now.timestamp()))
                    headers["webhook-signature"] = self._webhook.sign(message_id, now, payload)
                response = await self._client.post(callback.url, content=payload, headers=headers)
                if response.status_code >= 500 or response.status_code == 429:
                    raise ReceiverError(f"{callback.url} answered {response.status_code}")

    async def close(self) -> None:
        tasks = list(self._drains.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
