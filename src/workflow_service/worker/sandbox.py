"""Confinement of runs with bubblewrap (`bwrap`), where the host allows it.

A model is code (`#system`, recorders writing to any path) and so is a script
pipeline. With the sandbox the engine or the script sees the host read-only,
has a private /tmp, no network, its own PID and IPC namespaces, and may write
only in the run's working folder. ``RUN_SANDBOX`` chooses:

- ``auto`` (default): bwrap when a probe shows it works here, else no sandbox
  and a warning at start-up;
- ``bwrap``: required; start-up fails, and a run fails, when it does not work;
- ``none``: no sandbox.

The probe runs ``bwrap <the very flags runs get> true`` once per process and
checks its exit code: bwrap being installed is not enough (containers and
hardened hosts often forbid the namespaces it needs).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import workflow_service
from workflow_service.settings import Settings

logger = logging.getLogger(__name__)

SandboxMode = Literal["auto", "bwrap", "none"]
MODES: tuple[SandboxMode, ...] = ("auto", "bwrap", "none")
PROBE_SECONDS = 10.0


class SandboxUnavailable(RuntimeError):
    """RUN_SANDBOX=bwrap, and bwrap does not work on this host."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    """The bwrap used and its version when ``ok``, else why it does not work."""


def executable() -> str | None:
    """The bwrap on the worker's PATH, as an absolute path."""
    return shutil.which("bwrap")


def runtime_paths_in_tmp() -> list[Path]:
    """The interpreter, the venv and this package when they live under /tmp, which the
    sandbox replaces with an empty tmpfs (a checkout in /tmp on a CI machine)."""
    candidates = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent,
        Path(workflow_service.__file__).resolve().parent.parent,
    }
    tmp = Path("/tmp")  # noqa: S108 - the path the sandbox hides
    inside = sorted(path for path in candidates if path.is_relative_to(tmp) and path != tmp)
    return [path for path in inside if not any(path.is_relative_to(o) for o in inside if o != path)]


def bwrap_arguments(
    bwrap: str,
    workdir: Path,
    *,
    cwd: Path | None = None,
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
) -> list[str]:
    """The bwrap command line up to (and including) ``--``.

    Order matters: ``--tmpfs /tmp`` comes before the binds of the working folder so a
    working folder under /tmp stays the real, writable one, not a path in the tmpfs.
    The interpreter and the venv (``sys.prefix``) are under ``/``: readable; those under
    /tmp are mounted again, read-only, over the tmpfs (``readable``).

    ``--unshare-ipc``: the engine keeps a process map in System V shared memory keyed
    on a file in /tmp; with a private /tmp and the host's IPC namespace every run left
    a segment behind and warned "no processor available to avoid overloading". Its own
    IPC namespace also keeps a model away from other processes' segments.

    No ``--new-session``: it would put the sandboxed command in a session of its own,
    out of reach of the SIGTERM that run_supervised sends to the run's process group,
    and bwrap does not forward signals, so a cancel or a timeout would SIGKILL the
    engine and lose the recorders' unflushed rows (measured: a recorder file left
    empty). What it guards against, a command pushing input into its controlling
    terminal (TIOCSTI), cannot happen here: run_supervised starts bwrap in a new
    session already (no controlling terminal) with stdin on /dev/null.
    """
    arguments = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the sandbox's own private /tmp
    ]
    for folder in readable:
        arguments += ["--ro-bind", str(folder), str(folder)]
    for folder in (workdir, *writable):
        arguments += ["--bind", str(folder), str(folder)]
    return [
        *arguments,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--chdir",
        str(cwd or workdir),
        "--",
    ]


def wrap(
    argv: Sequence[str],
    workdir: Path,
    *,
    writable: list[Path] | None = None,
    cwd: Path | None = None,
    bwrap: str | None = None,
) -> list[str]:
    """``argv`` run inside the sandbox: only ``workdir`` (and ``writable``) may be
    written; the command starts in ``cwd`` (default: ``workdir``).

    bwrap itself runs under ``env --ignore-signal=TERM`` and the command under
    ``env --default-signal=TERM``: a SIGTERM to the process group then reaches the
    command (which flushes and exits, and bwrap exits with its code) instead of
    killing bwrap first, which with ``--die-with-parent`` would SIGKILL everything
    inside at once. SIGKILL still takes bwrap and so the whole sandbox down.
    """
    found = bwrap or executable()
    if found is None:
        raise SandboxUnavailable("bwrap is not installed (no `bwrap` on PATH)")
    env = shutil.which("env") or "/usr/bin/env"
    folders = [Path(folder).resolve() for folder in writable or []]
    prefix = bwrap_arguments(
        found,
        Path(workdir).resolve(),
        cwd=Path(cwd or workdir).resolve(),
        writable=folders,
        readable=runtime_paths_in_tmp(),
    )
    return [
        env,
        "--ignore-signal=TERM",
        *prefix,
        env,
        "--default-signal=TERM",
        *argv,
    ]


def probe_result(work_dir: Path | None = None, bwrap: str | None = None) -> ProbeResult:
    """Run ``bwrap <flags> true`` in a scratch folder under ``work_dir`` (where runs get
    theirs), with the bwrap on PATH unless ``bwrap`` names one; cached per process for
    each bwrap and folder."""
    return _probe(bwrap or executable(), work_dir)


@functools.cache
def _probe(found: str | None, work_dir: Path | None) -> ProbeResult:
    if found is None:
        return ProbeResult(False, "bwrap is not installed (no `bwrap` on PATH)")
    scratch = work_dir if work_dir is not None and work_dir.is_dir() else None
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-probe-", dir=scratch) as folder:
            done = subprocess.run(  # noqa: S603 - our own fixed command line
                wrap(["true"], Path(folder), bwrap=found),
                cwd=folder,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=PROBE_SECONDS,
                check=False,
            )
            version = subprocess.run(  # noqa: S603 - the bwrap found on PATH
                [found, "--version"], capture_output=True, text=True, timeout=5, check=False
            ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return ProbeResult(False, f"{found} could not be run: {exc}")
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[:300] or "no message"
        return ProbeResult(False, f"{found} exited with code {done.returncode}: {message}")
    return ProbeResult(True, f"{version or 'bwrap'} at {found}")


def probe(work_dir: Path | None = None) -> bool:
    """Whether bwrap, with the flags runs get, works here (cached)."""
    return probe_result(work_dir).ok


def decide(mode: SandboxMode, available: Callable[[], bool]) -> bool:
    """Whether runs get the sandbox; ``available`` is only asked when it matters."""
    if mode == "none":
        return False
    if available():
        return True
    if mode == "bwrap":
        raise SandboxUnavailable("RUN_SANDBOX=bwrap but bwrap does not work on this host")
    return False


def active(settings: Settings) -> bool:
    """Whether runs get the sandbox under these settings; SandboxUnavailable when
    RUN_SANDBOX=bwrap and it does not work (the message says why)."""
    result = (
        probe_result(settings.run_work_dir)
        if settings.run_sandbox != "none"
        else ProbeResult(False, "")
    )
    try:
        return decide(settings.run_sandbox, lambda: result.ok)
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(f"{exc}: {result.detail}") from None


def describe(settings: Settings) -> str:
    """One line on the sandbox runs get, for readiness and logs."""
    mode = settings.run_sandbox
    if mode == "none":
        return "off (RUN_SANDBOX=none): runs are not sandboxed"
    result = probe_result(settings.run_work_dir)
    if result.ok:
        return f"bwrap (RUN_SANDBOX={mode}): {result.detail}"
    if mode == "bwrap":
        return f"unavailable (RUN_SANDBOX=bwrap): {result.detail}"
    return f"off (RUN_SANDBOX=auto, bwrap does not work: {result.detail}): runs are not sandboxed"


def check_at_startup(settings: Settings) -> bool:
    """Log the sandbox state once; raise SandboxUnavailable for RUN_SANDBOX=bwrap
    without a working bwrap, so the service or the worker does not start."""
    on = active(settings)
    if on:
        logger.info("run sandbox: %s", describe(settings))
    elif settings.run_sandbox == "auto":
        logger.warning("run sandbox: %s", describe(settings))
    else:
        logger.info("run sandbox: %s", describe(settings))
    return on


async def readiness(settings: Settings) -> str:
    """The `sandbox` check of /readyz: ``"ok"`` when runs are sandboxed; the state in
    words (still ready) when they are not, by RUN_SANDBOX=none or auto without a
    working bwrap; SandboxUnavailable (not ready) when RUN_SANDBOX=bwrap and bwrap does
    not work. The probe runs once per process, in a thread."""
    on = await asyncio.to_thread(active, settings)
    return "ok" if on else describe(settings)
