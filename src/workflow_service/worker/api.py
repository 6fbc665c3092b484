"""The worker's side of the API: every call retried on connection errors and 5xx.

Every call is safe to repeat: state changes to the current state are no-ops,
console chunks carry their offsets, artifact registrations replace by name.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import stamina

from workflow_service.auth.scheme import API_KEY_HEADER
from workflow_service.runs.schemas import ArtifactRegistration, ConsoleAppend, Job, StateUpdate

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 12
RETRY_SECONDS = 120.0


class ApiUnavailable(Exception):
    """The API answered 5xx: worth another try."""


class ApiRefused(Exception):
    """The API answered 4xx: repeating will not help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message


class WorkerApi:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self._client = client
        self._client.headers[API_KEY_HEADER] = key

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        async for attempt in stamina.retry_context(
            on=(httpx.TransportError, ApiUnavailable),
            attempts=RETRY_ATTEMPTS,
            timeout=RETRY_SECONDS,
            wait_initial=0.1,
            wait_max=5.0,
        ):
            with attempt:
                response = await self._client.request(method, path, json=json)
                if response.status_code >= 500:
                    raise ApiUnavailable(f"{method} {path}: {response.status_code}")
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            raise ApiRefused(response.status_code, message)
        return response.json()

    @staticmethod
    def _run_path(pipeline_uuid: str, run_uuid: str) -> str:
        return f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}"

    async def claim(self, pipeline_uuid: str, run_uuid: str, claim: str) -> Job:
        """The run becomes RUNNING under ``claim``; raises ApiRefused (400) when it cannot
        (cancelled, or taken by another execution)."""
        data = await self._call(
            "POST", self._run_path(pipeline_uuid, run_uuid) + "/claim", {"claim": claim}
        )
        return Job.model_validate(data)

    async def set_state(self, pipeline_uuid: str, run_uuid: str, update: StateUpdate) -> None:
        """Raises ApiRefused (400) when the run cannot take that state (e.g. cancelled)."""
        await self._call(
            "PUT",
            self._run_path(pipeline_uuid, run_uuid) + "/state",
            update.model_dump(mode="json", exclude_none=True),
        )

    async def report(self, pipeline_uuid: str, run_uuid: str, report: ConsoleAppend) -> None:
        await self._call(
            "POST",
            self._run_path(pipeline_uuid, run_uuid) + "/console",
            report.model_dump(mode="json", exclude_none=True),
        )

    async def register_artifact(
        self, pipeline_uuid: str, run_uuid: str, registration: ArtifactRegistration
    ) -> None:
        await self._call(
            "POST",
            self._run_path(pipeline_uuid, run_uuid) + "/artifacts/register",
            registration.model_dump(mode="json"),
        )
