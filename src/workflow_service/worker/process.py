"""Runs the engine as a supervised subprocess.

Own session and process group (so a kill reaches every child), resource limits
set in the child, a clean environment (no secret of the worker leaks into a
model's `#system` commands), output pumped line by line to the caller, and on
timeout or cancel: SIGTERM to the group, a grace period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import os
import resource
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int | None
    memory_bytes: int | None
    file_bytes: int | None


@dataclass(frozen=True)
class Outcome:
    returncode: int
    timed_out: bool
    stopped: str | None = None
    """Why ``watch`` stopped the process, if it did."""


Watch = Callable[[], Awaitable[str | None]]
WATCH_SECONDS = 1.0


def _limit_child(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        # Die with the worker: a worker killed with SIGKILL leaves no engine running on.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        if limits.memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if limits.file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))

    return apply


def clean_environment(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2",
    }


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _pump(stream: asyncio.StreamReader, on_line: Callable[[str], None]) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial = ""
    while chunk := await stream.read(READ_BYTES):
        lines = (partial + decoder.decode(chunk)).split("\n")
        partial = lines.pop()
        for line in lines:
            on_line(line + "\n")
        if len(partial) > READ_BYTES:
            on_line(partial)
            partial = ""
    partial += decoder.decode(b"", final=True)
    if partial:
        on_line(partial)


async def run_supervised(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - the run limit, enforced with a group kill
    limits: Limits,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    watch: Watch | None = None,
) -> Outcome:
    """Run ``argv`` to its end or its timeout; cancelling the caller kills it too.

    ``watch`` is asked every second; a reason it returns stops the process (for
    instance: its output grew past the limit).
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limit_child(limits),  # rlimits must be set in the child
    )
    assert process.stdout is not None and process.stderr is not None
    pumps = asyncio.gather(_pump(process.stdout, on_stdout), _pump(process.stderr, on_stderr))
    timed_out = False
    stopped_reasons: list[str] = []
    try:
        try:
            await asyncio.wait_for(_wait_watching(process, watch, stopped_reasons), timeout)
        except TimeoutError:
            timed_out = True
            await _stop(process)
        await asyncio.wait_for(pumps, GRACE_SECONDS)
    finally:
        if process.returncode is None:
            await asyncio.shield(_stop(process))
        _signal_group(process.pid, signal.SIGKILL)
        if not pumps.done():
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumps
    assert process.returncode is not None
    stopped = stopped_reasons[0] if stopped_reasons else None
    return Outcome(returncode=process.returncode, timed_out=timed_out, stopped=stopped)


async def _wait_watching(
    process: asyncio.subprocess.Process, watch: Watch | None, reasons: list[str]
) -> None:
    """Wait for the process; every WATCH_SECONDS ask ``watch``, and stop it on a reason."""
    if watch is None:
        await process.wait()
        return
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), WATCH_SECONDS)
            return
        except TimeoutError:
            reason = await watch()
        if reason is not None:
            reasons.append(reason)
            await _stop(process)
            return


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the group (the engine flushes its recorders), then SIGKILL after a grace."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), GRACE_SECONDS)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
