"""Executes one run: the job function behind both arq and the in-process queue.

For a run: ask the API for the job, set RUNNING, make a fresh working directory
with the pipeline's files and then the run's inputs, run the engine there under
supervision while the console and progress stream to the API, upload every file
the run created or changed as an artifact, set the final state, clean up.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import stamina

from workflow_service.db import new_uuid
from workflow_service.engine import EXIT_MEANINGS, PROGRESS_RE
from workflow_service.logs import run_context
from workflow_service.outbound import fetch_to_file
from workflow_service.pipelines.models import PipelineKind
from workflow_service.runs.schemas import ArtifactRegistration, Job, StateUpdate
from workflow_service.runs.states import RunState
from workflow_service.settings import Settings
from workflow_service.storage import Storage, StorageError, StorageUnavailable
from workflow_service.worker import sandbox, script
from workflow_service.worker.api import ApiRefused, WorkerApi
from workflow_service.worker.console import ConsoleReporter
from workflow_service.worker.failures import RunFailed
from workflow_service.worker.process import Limits, Watch, clean_environment, run_supervised
from workflow_service.worker.script import ScriptJob, remove_container

logger = logging.getLogger(__name__)

PROGRESS_LINE = re.compile(PROGRESS_RE)
UPLOAD_ATTEMPTS = 10


def folder_size(folder: Path) -> int:
    return sum(
        path.lstat().st_size
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    )


@dataclass(frozen=True)
class Plan:
    """How to run what a run runs, and what it produced once it ran."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    outputs: Callable[[], list[tuple[str, Path]]]
    describe: Callable[[int], str]
    container: tuple[str, str] | None = None
    """(runtime, container name) to remove after the run, whatever happened."""


@dataclass(frozen=True)
class Snapshot:
    """Size and modification time of every file, to tell what a run created or changed."""

    files: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, folder: Path) -> Snapshot:
        files = {}
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                files[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return cls(files)

    def changed_since(self, before: Snapshot) -> list[str]:
        return sorted(name for name, seen in self.files.items() if before.files.get(name) != seen)


def engine_command(settings: Settings) -> list[str]:
    if settings.gridlabd_bin:
        return shlex.split(settings.gridlabd_bin)
    return [sys.executable, "-m", "workflow_service.engine"]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"the engine was killed by signal {-returncode}"
    meaning = EXIT_MEANINGS.get(returncode)
    return f"the engine exited with code {returncode}" + (f" ({meaning})" if meaning else "")


def confine(
    settings: Settings, argv: list[str], workdir: Path, cwd: Path | None = None
) -> list[str]:
    """``argv`` inside the run sandbox when RUN_SANDBOX and the host give one
    (docs/sandbox.md); RunFailed when RUN_SANDBOX=bwrap and bwrap does not work."""
    try:
        if not sandbox.active(settings):
            return argv
        return sandbox.wrap(argv, workdir, cwd=cwd)
    except sandbox.SandboxUnavailable as exc:
        raise RunFailed(f"sandbox unavailable: {exc}") from exc


class RunExecutor:
    def __init__(
        self, settings: Settings, api: WorkerApi, storage: Storage, fetcher: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.api = api
        self.storage = storage
        self.fetcher = fetcher
        # At start-up (the embedded API's and the arq worker's): logs the sandbox state,
        # and RUN_SANDBOX=bwrap without a working bwrap stops the start.
        sandbox.check_at_startup(settings)

    async def execute(self, pipeline_uuid: str, run_uuid: str) -> None:
        """Execute the run; every line logged meanwhile names it (run_uuid, pipeline_uuid)."""
        with run_context(pipeline_uuid, run_uuid):
            await self._execute(pipeline_uuid, run_uuid)

    async def _execute(self, pipeline_uuid: str, run_uuid: str) -> None:
        claim = new_uuid()
        try:
            job = await self.api.claim(pipeline_uuid, run_uuid, claim)
        except ApiRefused as exc:
            logger.info("run %s not started: %s", run_uuid, exc.message)
            return
        workdir = Path(
            tempfile.mkdtemp(prefix=f"run-{run_uuid[:12]}-", dir=self.settings.run_work_dir)
        )
        reporter = ConsoleReporter(
            self.api,
            pipeline_uuid,
            run_uuid,
            self.settings.heartbeat_seconds,
            offsets=(job.std_out_size, job.std_err_size),
        )
        reporter.start()
        try:
            final = await self._run(job, workdir, reporter)
        except asyncio.CancelledError:
            # Aborted by a cancel (the run is CANCELLED already), or the worker is shutting
            # down: then the run is handed back (NOT_STARTED) for another worker.
            await asyncio.shield(self._stop(job, reporter, claim))
            raise
        except Exception as exc:
            logger.exception("run %s failed in the worker", run_uuid)
            final = StateUpdate(state=RunState.FAILED, failure_reason=f"worker error: {exc}"[:2000])
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        await self._finish(job, reporter, final.model_copy(update={"claim": claim}))

    async def _stop(self, job: Job, reporter: ConsoleReporter, claim: str) -> None:
        reporter.write("std_err", "[worker] execution stopped\n")
        await self._finish(job, reporter, StateUpdate(state=RunState.NOT_STARTED, claim=claim))

    async def _finish(self, job: Job, reporter: ConsoleReporter, final: StateUpdate) -> None:
        await reporter.close()
        try:
            await self.api.set_state(job.pipeline_uuid, job.run_uuid, final)
            logger.info("run %s reported %s", job.run_uuid, final.state.value)
        except ApiRefused as exc:
            # The run ended elsewhere first (a cancel): its state stands.
            logger.info("run %s: final state %s refused: %s", job.run_uuid, final.state, exc)

    async def _run(self, job: Job, workdir: Path, reporter: ConsoleReporter) -> StateUpdate:
        deadline = time.monotonic() + job.timeout_seconds
        try:
            plan = await (
                self._plan_script(job, workdir, deadline)
                if job.kind == PipelineKind.SCRIPT.value
                else self._plan_engine(job, workdir)
            )
        except RunFailed as failure:
            reporter.write("std_err", failure.reason + "\n")
            return StateUpdate(state=RunState.FAILED, failure_reason=failure.reason)

        def on_stderr(line: str) -> None:
            progress = PROGRESS_LINE.match(line)
            if progress:
                reporter.progress(min(100, int(progress.group(1))))
            else:
                reporter.write("std_err", line)

        try:
            outcome = await run_supervised(
                plan.argv,
                cwd=plan.cwd,
                env=plan.env,
                timeout=max(deadline - time.monotonic(), 0.1),
                limits=Limits(
                    cpu_seconds=self.settings.run_max_cpu_seconds,
                    memory_bytes=self.settings.run_max_memory_bytes,
                    file_bytes=self.settings.run_max_file_bytes,
                ),
                on_stdout=lambda line: reporter.write("std_out", line),
                on_stderr=on_stderr,
                watch=self._output_watch(workdir),
            )
        finally:
            if plan.container is not None:
                await asyncio.shield(remove_container(*plan.container))
        if outcome.stopped is not None:
            reporter.write("std_err", outcome.stopped + "\n")
            return StateUpdate(
                state=RunState.FAILED, exit_code=outcome.returncode, failure_reason=outcome.stopped
            )
        try:
            await self._upload_artifacts(job, plan.outputs())
        except StorageError as exc:
            reason = f"artifact upload failed: {exc}"[:2000]
            reporter.write("std_err", reason + "\n")
            return StateUpdate(state=RunState.FAILED, failure_reason=reason)
        if outcome.timed_out:
            reason = (
                f"timeout: the run exceeded its limit of {job.timeout_seconds} s and was killed"
            )
            reporter.write("std_err", reason + "\n")
            return StateUpdate(
                state=RunState.FAILED, exit_code=outcome.returncode, failure_reason=reason
            )
        if outcome.returncode != 0:
            reason = plan.describe(outcome.returncode)
            reporter.write("std_err", reason + "\n")
            return StateUpdate(
                state=RunState.FAILED, exit_code=outcome.returncode, failure_reason=reason
            )
        return StateUpdate(state=RunState.COMPLETED, exit_code=0)

    async def _plan_engine(self, job: Job, workdir: Path) -> Plan:
        """Pipeline files, then inputs (an input wins over a file of the same name), then
        the engine on the model; the artifacts are the files it created or changed."""
        for item in job.files:
            try:
                await self.storage.download_to(item.key, workdir / item.name)
            except StorageError as exc:
                raise RunFailed(f"pipeline file {item.name}: {exc}") from exc
        await self._download_inputs(job, workdir)
        model = self._model(job, workdir)
        before = Snapshot.of(workdir)
        argv = [*engine_command(self.settings), *job.arguments]
        for name, value in job.defines.items():
            argv += ["-D", f"{name}={value}"]
        argv.append(model)
        argv = confine(self.settings, argv, workdir)

        def outputs() -> list[tuple[str, Path]]:
            names = Snapshot.of(workdir).changed_since(before)
            return [(name, workdir / name) for name in names]

        return Plan(argv, workdir, clean_environment(workdir), outputs, describe_exit)

    async def _plan_script(self, job: Job, workdir: Path, deadline: float) -> Plan:
        """The OpenFIDO contract: inputs in OPENFIDO_INPUT, every file the script leaves in
        OPENFIDO_OUTPUT is an artifact."""
        (workdir / "input").mkdir()
        await self._download_inputs(job, workdir / "input")
        script_job = ScriptJob(
            run_name=f"workflow-run-{job.run_uuid}",
            repository=job.repository_ssh_url or "",
            branch=job.repository_branch or "master",
            script=job.repository_script or "openfido.sh",
            image=job.docker_image_url,
        )
        runtime = self.settings.container_runtime
        plan = await script.prepare(
            script_job,
            workdir,
            engine=engine_command(self.settings),
            container_runtime=runtime,
            git_env=script.git_environment(
                workdir, self.settings.git_ssh_command, self.settings.ssh_known_hosts_file
            ),
            timeout=max(deadline - time.monotonic(), 0.1),
        )
        # A container is the script's sandbox; on the host, bwrap is.
        argv = plan.argv if runtime else confine(self.settings, plan.argv, workdir, plan.cwd)
        return Plan(
            argv,
            plan.cwd,
            plan.env,
            lambda: script.outputs_of(plan.outputs),
            script.describe_script_exit(container=runtime is not None),
            container=(runtime, script_job.run_name) if runtime else None,
        )

    async def _download_inputs(self, job: Job, folder: Path) -> None:
        for entry in job.inputs:
            target = folder / entry.name  # a relative path when it came from a sub-folder
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if entry.key is not None:
                    await self.storage.download_to(entry.key, target)
                elif entry.url is not None:
                    await fetch_to_file(
                        self.fetcher, entry.url, target, self.settings.input_max_bytes
                    )
            except Exception as exc:
                raise RunFailed(f"input {entry.name}: {exc}") from exc

    @staticmethod
    def _model(job: Job, workdir: Path) -> str:
        if job.model:
            if not (workdir / job.model).is_file():
                raise RunFailed(f"model {job.model} is neither a pipeline file nor an input")
            return job.model
        models = sorted(path.name for path in workdir.glob("*.glm"))
        if len(models) != 1:
            found = ", ".join(models) or "none"
            raise RunFailed(
                f"no model named: the pipeline names none and the run has {len(models)} "
                f".glm files ({found}); name one with the pipeline's `model`"
            )
        return models[0]

    def _output_watch(self, workdir: Path) -> Watch:
        limit = self.settings.run_max_output_bytes

        async def over_limit() -> str | None:
            size = await asyncio.to_thread(folder_size, workdir)
            if size <= limit:
                return None
            return (
                f"output limit: the run's working folder reached {size} bytes, over "
                f"RUN_MAX_OUTPUT_BYTES ({limit}); the run was stopped"
            )

        return over_limit

    async def _upload_artifacts(self, job: Job, files: list[tuple[str, Path]]) -> None:
        """Each object is stored (retried while storage is unreachable) before it is
        registered: no artifact without its object."""
        for name, path in files:
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            key = f"{job.artifact_prefix}{new_uuid()}-{name}"
            async for attempt in stamina.retry_context(
                on=StorageUnavailable,
                attempts=UPLOAD_ATTEMPTS,
                timeout=self.settings.storage_retry_seconds,
                wait_initial=0.5,
                wait_max=5.0,
            ):
                with attempt:
                    saved = await self.storage.put_file(key, path, content_type)
            await self.api.register_artifact(
                job.pipeline_uuid,
                job.run_uuid,
                ArtifactRegistration(
                    name=name,
                    key=key,
                    size=saved.size,
                    sha256=saved.sha256,
                    content_type=content_type,
                ),
            )
