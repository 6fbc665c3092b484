"""Running and following runs from the command line (`submit`, `runs logs -f`, `workflows run`).

`submit` finds or creates a `gridlabd` pipeline named after the model, uploads the
model and its companion files as the run's inputs, follows the run's live console
stream (state, progress, engine messages) and downloads the artifacts. Following
draws a rich progress bar when the status stream is a terminal, and writes plain
lines otherwise (logs, CI, pipes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from workflow_service.client import FINAL_STATES, Client, ClientError, Json

SubmitError = ClientError
FAILED_TAIL_LINES = 20


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


def find_or_create_pipeline(client: Client, name: str, model: str) -> Json:
    for pipeline in client.pipelines():
        if pipeline["kind"] == "gridlabd" and pipeline["name"] == name:
            return dict(pipeline)
    body = {
        "kind": "gridlabd",
        "name": name,
        "model": model,
        "description": "created by workflow-service submit",
    }
    return client.create_pipeline(body)


def status_console(stream: TextIO | None = None) -> Console:
    """Where status goes: stderr, plain (no colour, no markup) unless it is a terminal."""
    return Console(file=stream or sys.stderr, highlight=False, emoji=False, soft_wrap=True)


class PlainDisplay:
    """Plain lines: ``state: X``, ``progress: N%`` every 10 %, console text as it comes."""

    def __init__(self, status: Console | None, lines: IO[str] | None) -> None:
        self.status, self.lines, self.shown = status, lines, -1
        self.pending: dict[str, str] = {}  # a stream's last line, until it is complete

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        for stream in list(self.pending):
            self.text(stream, "\n")

    def text(self, stream: str, text: str) -> None:
        """Console text of ``stream`` (``std_out``/``std_err``), shown a whole line at a time."""
        *complete, self.pending[stream] = (self.pending.pop(stream, "") + text).split("\n")
        if not self.pending[stream]:
            del self.pending[stream]
        for line in complete:
            self.line(line)

    def line(self, line: str) -> None:
        if self.lines is not None:
            self.lines.write(line + "\n")
            self.lines.flush()

    def state(self, state: str) -> None:
        if self.status is not None:
            self.status.print(f"state: {state}", markup=False)

    def progress(self, percent: int) -> None:
        if self.status is not None and percent // 10 > self.shown // 10:
            self.shown = percent
            self.status.print(f"progress: {percent}%", markup=False)


class BarDisplay(PlainDisplay):
    """A rich progress bar (state as its label); console text printed above it."""

    def __init__(self, status: Console, show_console: bool, label: str) -> None:
        super().__init__(status, None)
        self.show_console, self.label = show_console, label
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=status,
            transient=False,
        )
        self.task = self.bar.add_task(f"{label} QUEUED", total=None)

    def __enter__(self) -> BarDisplay:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        super().__exit__()
        self.bar.stop()

    def state(self, state: str) -> None:
        self.bar.update(self.task, description=f"{self.label} {state}")
        if state == "COMPLETED":
            self.bar.update(self.task, total=100, completed=100)

    def progress(self, percent: int) -> None:
        self.bar.update(self.task, total=100, completed=percent)

    def line(self, line: str) -> None:
        if self.show_console:
            self.bar.console.print(line, markup=False, highlight=False)


def follow(
    client: Client,
    pipeline_uuid: str,
    run_uuid: str,
    *,
    status: Console | None,
    show_console: bool,
    lines: TextIO | None = None,
    bar: bool | None = None,
) -> Json:
    """Follow the run's live stream until it ends; answers the ended run.

    ``status`` gets the state and progress (a bar when it is a terminal and ``bar`` is
    not False; plain lines otherwise); console text goes to ``lines`` (default: the
    status stream) when ``show_console``. A run that FAILED without its console shown
    gets the last lines of its stderr printed.
    """
    fancy = status is not None and (status.is_terminal if bar is None else bar)
    display: PlainDisplay
    if fancy and status is not None:
        display = BarDisplay(status, show_console, f"run {run_uuid[:8]}")
    else:
        target = lines or (status.file if status is not None else sys.stderr)
        display = PlainDisplay(status, target if show_console else None)
    with display:
        for event in client.console_events(pipeline_uuid, run_uuid):
            if event.event == "state":
                display.state(event.data)
            elif event.event == "progress" and event.data.isdigit():
                display.progress(int(event.data))
            elif event.event in {"std_out", "std_err"}:
                display.text(event.event, event.data)
    run = client.wait_run(pipeline_uuid, run_uuid)
    if run["state"] == "FAILED" and not show_console and status is not None:
        tail = client.console(pipeline_uuid, run_uuid)["std_err"].splitlines()
        for line in tail[-FAILED_TAIL_LINES:]:
            status.print(line, markup=False, highlight=False)
    return run


def download(client: Client, run: Json, folder: Path, names: list[str] | None = None) -> list[Path]:
    """The run's artifacts (or those named) into ``folder``, never writing outside it."""
    artifacts = run["artifacts"]
    if names:
        known = {artifact["name"] for artifact in artifacts}
        missing = [name for name in names if name not in known]
        if missing:
            raise SubmitError(
                f"run {run['uuid']} has no artifact {', '.join(map(repr, missing))} "
                f"(it has: {', '.join(sorted(known)) or 'none'})"
            )
        artifacts = [artifact for artifact in artifacts if artifact["name"] in names]
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    saved = []
    for artifact in artifacts:
        target = (root / artifact["name"]).resolve()
        if not target.is_relative_to(root):
            raise SubmitError(f"refusing artifact name {artifact['name']!r}")
        saved.append(client.download_artifact(artifact, target))
    return saved


@dataclass
class Submitted:
    """What `submit` did; ``code`` is the process exit code."""

    pipeline: Json
    run: Json
    code: int
    downloaded: list[Path] = field(default_factory=list)

    def as_json(self) -> Json:
        return {
            "pipeline": self.pipeline,
            "run": self.run,
            "downloaded": [str(path) for path in self.downloaded],
        }


def submit(
    client: Client,
    path: Path,
    extra: list[Path],
    defines: dict[str, str],
    *,
    wait: bool,
    download_to: Path | None,
    status: Console | None,
    show_console: bool | None = None,
) -> Submitted:
    """Start the run; with ``wait`` (or ``download_to``) follow it to its end.

    ``status`` None is quiet (``--json``); ``show_console`` None shows the engine's
    messages when the status is not a terminal (a log), not under a progress bar.
    """
    submission = collect(path, extra)
    name = submission.model.stem[:50]
    pipeline = find_or_create_pipeline(client, name, submission.model.name)
    run = client.start_run(pipeline["uuid"], [submission.model, *submission.files], defines)
    say = status.print if status is not None else _quiet
    say(f"run {run['uuid']} of pipeline {pipeline['uuid']} ({name})", markup=False)
    if not wait and download_to is None:
        return Submitted(pipeline, run, 0)
    if show_console is None:
        show_console = status is not None and not status.is_terminal
    run = follow(client, pipeline["uuid"], run["uuid"], status=status, show_console=show_console)
    result = Submitted(pipeline, run, 0 if run["state"] == "COMPLETED" else 1)
    if download_to is not None:
        result.downloaded = download(client, run, download_to)
        for saved in result.downloaded:
            say(f"downloaded {saved}", markup=False)
    if run["state"] != "COMPLETED":
        say(f"run {run['state']}: {run.get('failure_reason') or ''}", markup=False)
    else:
        say("run COMPLETED", markup=False)
    return result


def _quiet(*_: Any, **__: Any) -> None:
    return None


def wait_workflow_run(
    client: Client,
    workflow_uuid: str,
    workflow_run_uuid: str,
    on_change: Callable[[str, str], None],
    names: dict[str, str],
    interval: float = 1.0,
) -> Json:
    """Poll a workflow run to its end, calling ``on_change(stage, state)`` on each change.

    ``names`` maps pipeline uuids to the names shown; the workflow run itself is ``workflow``.
    """
    seen: dict[str, str] = {}
    while True:
        workflow_run = client.workflow_run(workflow_uuid, workflow_run_uuid)
        for stage in workflow_run["workflow_pipeline_runs"]:
            state = stage["pipeline_run"]["state"]
            if seen.get(stage["uuid"]) != state:
                seen[stage["uuid"]] = state
                on_change(names.get(stage["pipeline_uuid"], stage["pipeline_uuid"]), state)
        if seen.get("") != workflow_run["state"]:
            seen[""] = workflow_run["state"]
            on_change("workflow", workflow_run["state"])
        if workflow_run["state"] in FINAL_STATES:
            return workflow_run
        time.sleep(interval)
