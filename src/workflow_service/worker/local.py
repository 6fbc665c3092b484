"""`workflow-service run-local`: a script pipeline run on this machine, as a worker runs it.

The same clone, checks, folders, environment, supervision and limits; the console
goes to this terminal and the output folder's files are copied to --output-dir.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from workflow_service.settings import Settings
from workflow_service.worker import sandbox, script
from workflow_service.worker.executor import confine, engine_command
from workflow_service.worker.failures import RunFailed
from workflow_service.worker.process import Limits, run_supervised


async def run_script_locally(
    settings: Settings,
    repository: str,
    branch: str,
    script_name: str,
    image: str | None,
    input_dir: Path,
    output_dir: Path,
) -> int:
    """The script's exit code (1 when it could not start, with the reason on stderr)."""
    deadline = time.monotonic() + settings.run_timeout_seconds
    with tempfile.TemporaryDirectory(prefix="run-local-", dir=settings.run_work_dir) as folder:
        workdir = Path(folder)
        shutil.copytree(input_dir, workdir / "input")
        job = script.ScriptJob(
            run_name=f"workflow-run-local-{workdir.name}",
            repository=repository,
            branch=branch,
            script=script_name,
            image=image,
        )
        try:
            plan = await script.prepare(
                job,
                workdir,
                engine=engine_command(settings),
                container_runtime=settings.container_runtime,
                git_env=script.git_environment(
                    workdir, settings.git_ssh_command, settings.ssh_known_hosts_file
                ),
                timeout=settings.run_timeout_seconds,
            )
            # As a worker runs it: in the container, else in the sandbox when there is one.
            argv = (
                plan.argv
                if settings.container_runtime
                else confine(settings, plan.argv, workdir, plan.cwd)
            )
        except RunFailed as failure:
            sys.stderr.write(failure.reason + "\n")
            return 1
        try:
            if (
                argv is plan.argv
                and not settings.container_runtime
                and settings.run_sandbox == "auto"
            ):
                sys.stderr.write(f"warning: run sandbox {sandbox.describe(settings)}\n")
            outcome = await run_supervised(
                argv,
                cwd=plan.cwd,
                env=plan.env,
                timeout=max(deadline - time.monotonic(), 0.1),
                limits=Limits(
                    settings.run_max_cpu_seconds,
                    settings.run_max_memory_bytes,
                    settings.run_max_file_bytes,
                ),
                on_stdout=_echo(sys.stdout),
                on_stderr=_echo(sys.stderr),
            )
        finally:
            if settings.container_runtime:
                await script.remove_container(settings.container_runtime, job.run_name)
        await asyncio.to_thread(_copy_outputs, plan.outputs, output_dir)
    if outcome.timed_out:
        sys.stderr.write(f"timeout: killed after {settings.run_timeout_seconds} s\n")
        return 1
    if outcome.returncode != 0:
        describe = script.describe_script_exit(container=settings.container_runtime is not None)
        sys.stderr.write(describe(outcome.returncode) + "\n")
    return outcome.returncode


def _echo(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def _copy_outputs(outputs: Path, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, path in script.outputs_of(outputs):
        target = output_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        sys.stderr.write(f"output: {target}\n")
