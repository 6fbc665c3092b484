"""`workflow-service submit`: run a model on a server from the command line.

Finds or creates a `gridlabd` pipeline named after the model, uploads the model
and its companion files as the run's inputs, follows the run's live console
stream (state and progress), and downloads the artifacts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from workflow_service.auth.dependencies import API_KEY_HEADER
from workflow_service.credentials import read_credentials

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED"}
SERVER_VARIABLE = "WORKFLOW_SERVER"
KEY_VARIABLE = "WORKFLOW_API_KEY"


class SubmitError(Exception):
    """A problem the user can fix; the message says which."""


@dataclass(frozen=True)
class Submission:
    model: Path
    files: list[Path]


def collect(path: Path, extra: list[Path]) -> Submission:
    """A model file and its companions, or a folder holding exactly one model."""
    if path.is_dir():
        models = sorted(item for item in path.iterdir() if item.suffix.lower() == ".glm")
        if len(models) != 1:
            raise SubmitError(f"{path} must hold exactly one .glm file, not {len(models)}")
        companions = sorted(item for item in path.iterdir() if item.is_file() and item != models[0])
        return Submission(models[0], companions + extra)
    if not path.is_file() or path.suffix.lower() != ".glm":
        raise SubmitError(f"{path} is neither a .glm file nor a folder")
    return Submission(path, extra)


def connection(server: str | None, key: str | None, credentials: Path) -> tuple[str, str]:
    """Options first, then WORKFLOW_SERVER / WORKFLOW_API_KEY, then the credentials file."""
    server = server or os.environ.get(SERVER_VARIABLE)
    key = key or os.environ.get(KEY_VARIABLE)
    if not server or not key:
        saved = read_credentials(credentials)
        server = server or saved.get("server")
        key = key or saved.get("api_key")
    if not server or not key:
        raise SubmitError(
            f"no server or key: pass --server and --key, set {SERVER_VARIABLE} and "
            f"{KEY_VARIABLE}, or start `workflow-service serve` here once (it saves {credentials})"
        )
    return server, key


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise SubmitError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {message}"
        )
    return response.json()


def find_or_create_pipeline(client: httpx.Client, name: str, model: str) -> dict[str, Any]:
    for pipeline in _checked(client.get("/v1/pipelines")):
        if pipeline["kind"] == "gridlabd" and pipeline["name"] == name:
            return dict(pipeline)
    body = {
        "kind": "gridlabd",
        "name": name,
        "model": model,
        "description": "created by workflow-service submit",
    }
    return dict(_checked(client.post("/v1/pipelines", json=body)))


def start_run(
    client: httpx.Client, pipeline_uuid: str, submission: Submission, defines: dict[str, str]
) -> dict[str, Any]:
    handles = [path.open("rb") for path in [submission.model, *submission.files]]
    try:
        files = [("files", (Path(handle.name).name, handle)) for handle in handles]
        data = {"defines": json.dumps(defines)} if defines else None
        return dict(
            _checked(client.post(f"/v1/pipelines/{pipeline_uuid}/runs", files=files, data=data))
        )
    finally:
        for handle in handles:
            handle.close()


def _events(client: httpx.Client, url: str) -> Iterator[tuple[str, str]]:
    with client.stream("GET", url, timeout=httpx.Timeout(30, read=None)) as response:
        if response.status_code != 200:
            response.read()
            _checked(response)
        event, data = "message", []
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                yield event, "\n".join(data)
                event, data = "message", []


def follow(client: httpx.Client, pipeline_uuid: str, run_uuid: str, out: TextIO) -> dict[str, Any]:
    """Print states, progress and the engine's messages until the run ends."""
    run_url = f"/v1/pipelines/{pipeline_uuid}/runs/{run_uuid}"
    shown = -1
    try:
        for event, data in _events(client, f"{run_url}/console/stream"):
            if event == "state":
                out.write(f"state: {data}\n")
            elif event == "progress" and int(data) // 10 > shown // 10:
                shown = int(data)
                out.write(f"progress: {shown}%\n")
            elif event in {"std_out", "std_err"}:
                out.write(data if data.endswith("\n") else data + "\n")
            elif event == "end":
                break
    except httpx.TransportError as exc:
        out.write(f"(live stream lost: {exc}; polling)\n")
    while True:
        run = dict(_checked(client.get(run_url)))
        if run["state"] in FINAL_STATES:
            return run
        time.sleep(1)


def download(client: httpx.Client, run: dict[str, Any], folder: Path) -> list[Path]:
    """Every artifact into ``folder``, keeping relative names, never writing outside it."""
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    saved = []
    for artifact in run["artifacts"]:
        target = (root / artifact["name"]).resolve()
        if not target.is_relative_to(root):
            raise SubmitError(f"refusing artifact name {artifact['name']!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with client.stream(
            "GET", f"/v1/artifacts/{artifact['uuid']}", follow_redirects=True
        ) as response:
            if response.status_code != 200:
                response.read()
                _checked(response)
            with target.open("wb") as stream:
                for chunk in response.iter_bytes():
                    stream.write(chunk)
        saved.append(target)
    return saved


def submit(
    path: Path,
    extra: list[Path],
    defines: dict[str, str],
    *,
    server: str,
    key: str,
    wait: bool,
    download_to: Path | None,
    out: TextIO = sys.stderr,
) -> int:
    """Returns the process exit code: 0 when the run completed (or was only submitted)."""
    submission = collect(path, extra)
    with httpx.Client(base_url=server, headers={API_KEY_HEADER: key}, timeout=60) as client:
        name = submission.model.stem[:50]
        pipeline = find_or_create_pipeline(client, name, submission.model.name)
        run = start_run(client, pipeline["uuid"], submission, defines)
        out.write(f"run {run['uuid']} of pipeline {pipeline['uuid']} ({name})\n")
        if not wait and download_to is None:
            print(run["uuid"])
            return 0
        run = follow(client, pipeline["uuid"], run["uuid"], out)
        if download_to is not None:
            for saved in download(client, run, download_to):
                out.write(f"downloaded {saved}\n")
    if run["state"] != "COMPLETED":
        out.write(f"run {run['state']}: {run.get('failure_reason') or ''}\n")
        return 1
    out.write("run COMPLETED\n")
    return 0
