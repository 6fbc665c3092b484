"""A small typed client of the v1 API, used by the command line.

One :class:`Client` wraps an ``httpx.Client`` with the key; every call answers
the API's JSON, or raises :class:`ApiError` (the API refused: its ``message``
and field ``errors``) or :class:`Unreachable` (no answer at all). The live
console stream (server-sent events) is parsed by :func:`parse_sse`, the one SSE
parser of the code base.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx

from workflow_service.auth.scheme import API_KEY_HEADER
from workflow_service.credentials import read_credentials

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
SERVER_VARIABLE = "WORKFLOW_SERVER"
KEY_VARIABLE = "WORKFLOW_API_KEY"
START_HINT = (
    "start one with `workflow-service serve` (or `make run`), or point at another "
    f"with --server / {SERVER_VARIABLE}"
)
_UUID = re.compile(r"^[0-9a-f]{32}$")
_RECONNECTS = 5

Json = dict[str, Any]


class ClientError(Exception):
    """A problem the user can fix; the message says which (exit code 2)."""


class Unreachable(ClientError):
    """The server did not answer."""


class ApiError(ClientError):
    """The API answered 4xx or 5xx."""

    def __init__(
        self, method: str, path: str, status: int, message: str, errors: Any = None
    ) -> None:
        self.method, self.path, self.status = method, path, status
        self.message, self.errors = message, errors
        lines = [f"{method} {path}: {status} {message}"]
        lines += [f"  {field}: {text}" for field, text in field_errors(errors)]
        if status == 401:
            lines.append(f"  (check --key / {KEY_VARIABLE}, or the key `serve` saved)")
        super().__init__("\n".join(lines))


def field_errors(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Flatten the API's ``errors`` (nested like the request) into ``(field.path, message)``."""
    if isinstance(errors, dict):
        for name, value in errors.items():
            yield from field_errors(value, f"{prefix}.{name}" if prefix else str(name))
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict | list):
                yield from field_errors(item, prefix)
            else:
                yield prefix or "_schema", str(item)
    elif errors is not None:
        yield prefix or "_schema", str(errors)


def connection(server: str | None, key: str | None, credentials: Path) -> tuple[str, str]:
    """Options first, then WORKFLOW_SERVER / WORKFLOW_API_KEY, then the credentials file."""
    server = server or os.environ.get(SERVER_VARIABLE)
    key = key or os.environ.get(KEY_VARIABLE)
    if not server or not key:
        saved = read_credentials(credentials)
        server = server or saved.get("server")
        key = key or saved.get("api_key")
    if not server or not key:
        raise ClientError(
            f"no server or key: pass --server and --key, set {SERVER_VARIABLE} and "
            f"{KEY_VARIABLE}, or start `workflow-service serve` here once (it saves {credentials})"
        )
    return server, key


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Server-sent events from the stream's lines (comments and pings skipped)."""
    event, data, event_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                yield Event(event, "\n".join(data), event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
    if data:
        yield Event(event, "\n".join(data), event_id)


def _files(paths: Iterable[Path]) -> list[BinaryIO]:
    handles: list[BinaryIO] = []
    try:
        for path in paths:
            handles.append(path.open("rb"))
    except OSError as exc:
        for handle in handles:
            handle.close()
        raise ClientError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return handles


class Client:
    """The v1 API at ``server`` with ``key``; use as a context manager."""

    def __init__(self, server: str, key: str, *, timeout: float = 60) -> None:
        self.server = server
        self._http = httpx.Client(base_url=server, headers={API_KEY_HEADER: key}, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        return Unreachable(f"cannot reach the server at {self.server} ({exc}): {START_HINT}")

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        message, errors = response.text.strip() or response.reason_phrase, None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or message)
            errors = body.get("errors")
        request = response.request
        raise ApiError(request.method, request.url.path, response.status_code, message, errors)

    def request(self, method: str, path: str, **options: Any) -> Any:
        """The answer's JSON; raises ApiError or Unreachable."""
        try:
            response = self._http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._check(response)
        return response.json()

    # -- pipelines --------------------------------------------------------------------------

    def pipelines(self) -> list[Json]:
        return list(self.request("GET", "/v1/pipelines"))

    def pipeline(self, reference: str) -> Json:
        """A pipeline by uuid, or by its (unique) name."""
        if _UUID.match(reference):
            return dict(self.request("GET", f"/v1/pipelines/{reference}"))
        return _by_name("pipeline", reference, self.pipelines())

    def create_pipeline(self, body: Json) -> Json:
        return dict(self.request("POST", "/v1/pipelines", json=body))

    def add_pipeline_files(self, pipeline_uuid: str, paths: list[Path]) -> list[Json]:
        handles = _files(paths)
        try:
            files = [("files", (Path(handle.name).name, handle)) for handle in handles]
            return list(self.request("POST", f"/v1/pipelines/{pipeline_uuid}/files", files=files))
        finally:
            for handle in handles:
                handle.close()

    def pipeline_files(self, pipeline_uuid: str) -> list[Json]:
        return list(self.request("GET", f"/v1/pipelines/{pipeline_uuid}/files"))

    def delete_pipeline(self, pipeline_uuid: str) -> None:
        self.request("DELETE", f"/v1/pipelines/{pipeline_uuid}")

    # -- runs -------------------------------------------------------------------------------

    def runs(self, pipeline_uuid: str) -> list[Json]:
        return list(self.request("GET", f"/v1/pipelines/{pipeline_uuid}/runs"))

    def run(self, pipeline_uuid: str, run_uuid: str) -> Json:
        return dict(self.request("GET", f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}"))

    def start_run(
        self, pipeline_uuid: str, paths: list[Path], defines: dict[str, str] | None = None
    ) -> Json:
        """A run with ``paths`` uploaded as its inputs (multipart), or none (JSON)."""
        return dict(self._start(f"/v1/pipelines/{pipeline_uuid}/runs", paths, defines))

    def cancel_run(self, pipeline_uuid: str, run_uuid: str) -> Json:
        path = f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}/cancel"
        return dict(self.request("POST", path))

    def console(self, pipeline_uuid: str, run_uuid: str) -> Json:
        path = f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}/console"
        return dict(self.request("GET", path))

    def console_events(self, pipeline_uuid: str, run_uuid: str) -> Iterator[Event]:
        """The run's live console stream until its ``end`` event.

        A dropped connection is resumed where it was (``Last-Event-ID``) a few times
        before giving up with Unreachable.
        """
        path = f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}/console/stream"
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self._http.stream(
                    "GET", path, headers=headers, timeout=httpx.Timeout(30, read=None)
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        self._check(response)
                    for event in parse_sse(response.iter_lines()):
                        failures = 0
                        if event.id:
                            last_id = event.id
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > _RECONNECTS:
                    raise self._unreachable(exc) from None
                time.sleep(min(0.5 * 2**failures, 5))
                continue
            # The server closed the stream without `end`: reconnect after a moment.
            failures += 1
            if failures > _RECONNECTS:
                raise ClientError(f"the console stream of run {run_uuid} kept closing early")
            time.sleep(0.5)

    def wait_run(self, pipeline_uuid: str, run_uuid: str, interval: float = 0.5) -> Json:
        """Poll until the run has ended; answers it."""
        while True:
            run = self.run(pipeline_uuid, run_uuid)
            if run["state"] in FINAL_STATES:
                return run
            time.sleep(interval)

    def download_artifact(self, artifact: Json, target: Path) -> Path:
        """Stream one artifact to ``target``, checking its size and sha256."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._http.stream(
                "GET", f"/v1/artifacts/{artifact['uuid']}", follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._check(response)
                with partial.open("wb") as stream:
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        stream.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise self._unreachable(exc) from None
        if artifact.get("sha256") and digest.hexdigest() != artifact["sha256"]:
            partial.unlink(missing_ok=True)
            raise ClientError(f"artifact {artifact['name']}: sha256 mismatch, not saved")
        partial.replace(target)
        return target

    # -- workflows --------------------------------------------------------------------------

    def workflows(self) -> list[Json]:
        return list(self.request("GET", "/v1/workflows"))

    def workflow(self, reference: str) -> Json:
        """A workflow by uuid, or by its (unique) name."""
        if _UUID.match(reference):
            return dict(self.request("GET", f"/v1/workflows/{reference}"))
        return _by_name("workflow", reference, self.workflows())

    def start_workflow_run(
        self, workflow_uuid: str, paths: list[Path], defines: dict[str, str] | None = None
    ) -> Json:
        return dict(self._start(f"/v1/workflows/{workflow_uuid}/runs", paths, defines))

    def workflow_run(self, workflow_uuid: str, workflow_run_uuid: str) -> Json:
        path = f"/v1/workflows/{workflow_uuid}/runs/{workflow_run_uuid}"
        return dict(self.request("GET", path))

    def _start(self, path: str, paths: list[Path], defines: dict[str, str] | None) -> Any:
        if not paths:
            return self.request("POST", path, json={"defines": defines or {}})
        handles = _files(paths)
        try:
            files = [("files", (Path(handle.name).name, handle)) for handle in handles]
            data = {"defines": json.dumps(defines)} if defines else None
            return self.request("POST", path, files=files, data=data)
        finally:
            for handle in handles:
                handle.close()


def _by_name(kind: str, name: str, items: list[Json]) -> Json:
    found = [item for item in items if item["name"] == name]
    if not found:
        raise ClientError(f"no {kind} named {name!r} (nor with that uuid)")
    if len(found) > 1:
        uuids = ", ".join(item["uuid"] for item in found)
        raise ClientError(f"several {kind}s are named {name!r}: pass a uuid ({uuids})")
    return dict(found[0])
