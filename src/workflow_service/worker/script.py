"""OpenFIDO script pipelines: clone a repository, run `sh <script>` on the host or in a
container, with OPENFIDO_INPUT and OPENFIDO_OUTPUT naming the input and output folders.

Everything here builds argument lists (never shell strings from user data) and
raises RunFailed with a reason that names the cause: clone failed, branch
missing, script missing, image missing, script exit code.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workflow_service.worker.failures import RunFailed
from workflow_service.worker.process import Limits, clean_environment, run_supervised

CLONE_LIMITS = Limits(cpu_seconds=None, memory_bytes=None, file_bytes=None)
SUPPORTED_REPOSITORY = re.compile(
    r"^(?:(?:https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$"
)
INPUT_IN_CONTAINER = "/openfido/input"
OUTPUT_IN_CONTAINER = "/openfido/output"
REPOSITORY_IN_CONTAINER = "/openfido/repository"
REMOVE_SECONDS = 10.0


@dataclass(frozen=True)
class ScriptJob:
    """What a script run needs, from a job or from `run-local`'s options."""

    run_name: str
    repository: str
    branch: str
    script: str
    image: str | None


def git_environment(workdir: Path, ssh_command: str, known_hosts: Path | None) -> dict[str, str]:
    command = ssh_command
    if known_hosts is not None:
        command += f" -o UserKnownHostsFile={shlex.quote(str(known_hosts))}"
    return clean_environment(workdir) | {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": command,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


async def clone(
    job: ScriptJob,
    target: Path,
    env: dict[str, str],
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Shallow clone of the branch; only http(s), ssh, git and file URLs (no ext:: tricks)."""
    if not SUPPORTED_REPOSITORY.fullmatch(job.repository):
        raise RunFailed(
            f"clone failed: unsupported repository URL {job.repository!r} "
            "(https://, ssh://, user@host:path, git:// or file:// only)"
        )
    errors: list[str] = []
    argv = [
        "git",
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "protocol.fd.allow=never",
        "-c",
        "protocol.file.allow=always",
        "clone",
        "--quiet",
        "--depth",
        "1",
        "--single-branch",
        "--branch",
        job.branch,
        "--",
        job.repository,
        str(target),
    ]
    outcome = await run_supervised(
        argv,
        cwd=target.parent,
        env=env,
        timeout=timeout,
        limits=CLONE_LIMITS,
        on_stdout=errors.append,
        on_stderr=errors.append,
    )
    if outcome.timed_out:
        raise RunFailed(f"clone failed: timeout after {timeout:.0f} s")
    if outcome.returncode != 0:
        text = "".join(errors)
        if "Remote branch" in text and "not found" in text:
            raise RunFailed(f"clone failed: branch {job.branch} not found in {job.repository}")
        last = [line.strip() for line in text.splitlines() if line.strip()][-1:] or ["no message"]
        raise RunFailed(f"clone failed: {last[0]}")


def script_in(repository: Path, script: str) -> Path:
    """The script, which must be a file inside the clone (a symlink out of it is refused)."""
    path = (repository / script).resolve()
    if not path.is_relative_to(repository.resolve()) or not path.is_file():
        raise RunFailed(f"script missing: {script} is not a file in the repository")
    return path


def gridlabd_shim(folder: Path, engine: Sequence[str]) -> Path:
    """A `gridlabd` command that runs the configured engine, for scripts on the host."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "gridlabd"
    shim.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(part) for part in engine) + ' "$@"\n')
    shim.chmod(0o755)
    return folder


def host_command(
    script: Path, repository: Path, inputs: Path, outputs: Path, shims: Path, workdir: Path
) -> tuple[list[str], dict[str, str]]:
    env = clean_environment(workdir)
    env |= {
        "PATH": f"{shims}:{env['PATH']}",
        "OPENFIDO_INPUT": str(inputs),
        "OPENFIDO_OUTPUT": str(outputs),
    }
    return ["sh", str(script.relative_to(repository.resolve()))], env


def container_command(
    runtime: str,
    job: ScriptJob,
    script: Path,
    repository: Path,
    inputs: Path,
    outputs: Path,
) -> list[str]:
    """`docker|podman run` with the clone, input and output folders mounted."""
    if not job.image:
        raise RunFailed("container failed: the pipeline names no docker_image_url")
    relative = script.relative_to(repository.resolve()).as_posix()
    return [
        runtime,
        "run",
        "--rm",
        "--name",
        job.run_name,
        "--pull",
        "missing",
        "--volume",
        f"{repository}:{REPOSITORY_IN_CONTAINER}",
        "--volume",
        f"{inputs}:{INPUT_IN_CONTAINER}:ro",
        "--volume",
        f"{outputs}:{OUTPUT_IN_CONTAINER}",
        "--workdir",
        REPOSITORY_IN_CONTAINER,
        "--env",
        f"OPENFIDO_INPUT={INPUT_IN_CONTAINER}",
        "--env",
        f"OPENFIDO_OUTPUT={OUTPUT_IN_CONTAINER}",
        "--",
        job.image,
        "sh",
        relative,
    ]


def describe_script_exit(container: bool) -> Callable[[int], str]:
    def describe(returncode: int) -> str:
        if returncode < 0:
            return f"the script was killed by signal {-returncode}"
        if container and returncode == 125:
            return "container failed: the runtime could not start it (image missing?); see std_err"
        return f"the script exited with code {returncode}"

    return describe


def outputs_of(folder: Path) -> list[tuple[str, Path]]:
    """Every file in the output folder, sub-folders too, named relative to it."""
    return sorted(
        (path.relative_to(folder).as_posix(), path)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    )


@dataclass(frozen=True)
class ScriptPlan:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    outputs: Path


async def prepare(
    job: ScriptJob,
    workdir: Path,
    *,
    engine: Sequence[str],
    container_runtime: str | None,
    git_env: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - the clone's share of the run's time
) -> ScriptPlan:
    """Clone, check the script, make the output folder; ``workdir/input`` must hold the
    inputs already. Returns how to run the script."""
    repository, inputs, outputs = workdir / "repository", workdir / "input", workdir / "output"
    inputs.mkdir(exist_ok=True)
    outputs.mkdir()
    await clone(job, repository, git_env, timeout)
    script = script_in(repository, job.script)
    if container_runtime:
        argv = container_command(container_runtime, job, script, repository, inputs, outputs)
        # The runtime's client gets the worker's environment (DOCKER_HOST, its HOME with
        # registry credentials, XDG_RUNTIME_DIR for rootless podman); the script inside
        # the container sees only the variables passed with --env.
        return ScriptPlan(argv, repository, dict(os.environ), outputs)
    shims = gridlabd_shim(workdir / ".bin", engine)
    argv, env = host_command(script, repository, inputs, outputs, shims, workdir)
    return ScriptPlan(argv, repository, env, outputs)


async def remove_container(runtime: str, name: str) -> None:
    """Best effort after a run (cancelled, timed out or not): `run --rm` may not have
    had the chance to remove it when its client was killed."""
    try:
        process = await asyncio.create_subprocess_exec(
            runtime,
            "rm",
            "--force",
            name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return
    try:
        await asyncio.wait_for(process.wait(), REMOVE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
