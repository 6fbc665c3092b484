"""The run sandbox (RUN_SANDBOX, bubblewrap): the real bwrap and the real engine.

Escape attempts a model can make (recorders writing to ``../`` and absolute paths,
``#system`` commands writing outside or reaching the network, seeing other
processes) run in a fresh working folder the way the executor runs them, and once
end to end through the service. Without a working bwrap these tests skip, and fail
under CI=true (``make test`` installs bubblewrap on a Debian CI machine).

Two places outside the working folder matter: /tmp is the sandbox's own (a tmpfs),
so writes there succeed inside and vanish; everything else is the host, read-only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import MODELS, Service, data_rows, engine_processes
from workflow_service.settings import Settings, SettingsError, load_settings
from workflow_service.worker import sandbox
from workflow_service.worker.executor import confine
from workflow_service.worker.failures import RunFailed
from workflow_service.worker.process import Limits, clean_environment, run_supervised

IN_CI = os.environ.get("CI", "").lower() == "true"
ENGINE = [sys.executable, "-m", "workflow_service.engine"]
TINY = (MODELS / "tiny" / "tiny.glm").read_text()
NO_LIMITS = Limits(cpu_seconds=None, memory_bytes=None, file_bytes=None)
ENGINE_FAILED = 255  # the engine's exit code when the run fails (a recorder cannot open)


def require_bwrap() -> None:
    """Nothing when bwrap works here; else a skip, or a failure under CI=true."""
    result = sandbox.probe_result()
    if result.ok:
        return
    message = f"bwrap does not work here: {result.detail}"
    if IN_CI:
        pytest.fail(f"CI=true but {message} (`make test` installs bubblewrap when it can)")
    pytest.skip(message)


@pytest.fixture
def bwrap() -> None:
    require_bwrap()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder the host may write, outside any working folder and outside /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-outside-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def in_tmp() -> Iterator[Path]:
    """A folder in the host's /tmp itself (pytest's tmp_path may live elsewhere)."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-tmp-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def host_tmp_name() -> Iterator[Path]:
    """A path in the host's /tmp that nothing should create."""
    path = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}"
    yield path
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Ran:
    returncode: int
    timed_out: bool
    console: str
    files: list[str]


async def run_model(
    text: str,
    workdir: Path,
    *,
    sandboxed: bool = True,
    timeout: float = 60,  # noqa: ASYNC109 - the run's limit
) -> Ran:
    """One model in a fresh working folder, run as the executor runs it."""
    write(workdir / "model.glm", text)
    settings = Settings(run_sandbox="bwrap" if sandboxed else "none")
    argv = confine(settings, [*ENGINE, "model.glm"], workdir)
    lines: list[str] = []
    outcome = await run_supervised(
        argv,
        cwd=workdir,
        env=clean_environment(workdir),
        timeout=timeout,
        limits=NO_LIMITS,
        on_stdout=lines.append,
        on_stderr=lines.append,
    )
    return Ran(outcome.returncode, outcome.timed_out, "".join(lines), listing(workdir))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(text)


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, relative to it."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def exists(path: Path) -> bool:
    return path.exists()


def recorder_to(path: str) -> str:
    return TINY.replace("file tiny_out.csv;", f"file {path};")


# --- wrap(): the argument list ------------------------------------------------


def test_wrap_builds_the_bwrap_command_line(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    env = shutil.which("env")
    # Only when this checkout lives under /tmp: the interpreter, venv and code again.
    runtime = [x for path in sandbox.runtime_paths_in_tmp() for x in ("--ro-bind", path, path)]
    assert sandbox.wrap(["gridlabd", "model.glm"], workdir, bwrap="/usr/bin/bwrap") == [
        env,
        "--ignore-signal=TERM",
        "/usr/bin/bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        *map(str, runtime),
        "--bind",
        str(workdir),
        str(workdir),
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--chdir",
        str(workdir),
        "--",
        env,
        "--default-signal=TERM",
        "gridlabd",
        "model.glm",
    ]


def test_wrap_binds_after_the_tmpfs_starts_in_cwd_and_resolves_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = sandbox.wrap(
        ["sh", "openfido.sh"],
        Path("run"),
        cwd=Path("run/repository"),
        writable=[Path("extra")],
        bwrap="/usr/bin/bwrap",
    )
    binds = [argv[i + 1] for i, part in enumerate(argv) if part == "--bind"]
    assert binds == [str(tmp_path / "run"), str(tmp_path / "extra")]
    assert argv.index("--tmpfs") < argv.index("--bind")  # a working folder in /tmp stays
    assert argv[argv.index("--chdir") + 1] == str(tmp_path / "run" / "repository")
    assert argv[-2:] == ["sh", "openfido.sh"]
    assert "--new-session" not in argv  # see bwrap_arguments: it would break SIGTERM


def test_runtime_under_tmp_is_mounted_again_over_the_tmpfs(tmp_path: Path) -> None:
    argv = sandbox.bwrap_arguments(
        "/usr/bin/bwrap", tmp_path / "run", readable=[Path("/tmp/checkout/.venv")]
    )
    after_tmpfs = argv[argv.index("--tmpfs") + 2 :]
    assert after_tmpfs[:6] == [
        "--ro-bind",
        "/tmp/checkout/.venv",
        "/tmp/checkout/.venv",
        "--bind",
        str(tmp_path / "run"),
        str(tmp_path / "run"),
    ]


def test_wrap_without_bwrap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sandbox.SandboxUnavailable, match="not installed"):
        sandbox.wrap(["true"], tmp_path)


# --- RUN_SANDBOX: the mode decisions -----------------------------------------


def never_asked() -> bool:
    raise AssertionError("RUN_SANDBOX=none must not probe")


@pytest.mark.parametrize(
    ("mode", "works", "sandboxed"),
    [("auto", True, True), ("auto", False, False), ("bwrap", True, True), ("none", True, False)],
)
def test_mode_decisions(mode: sandbox.SandboxMode, works: bool, sandboxed: bool) -> None:
    assert sandbox.decide(mode, lambda: works) is sandboxed


def test_none_never_probes_and_bwrap_requires_it() -> None:
    assert sandbox.decide("none", never_asked) is False
    with pytest.raises(sandbox.SandboxUnavailable, match="RUN_SANDBOX=bwrap"):
        sandbox.decide("bwrap", lambda: False)


def test_run_sandbox_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUN_SANDBOX", raising=False)
    assert load_settings().run_sandbox == "auto"
    monkeypatch.setenv("RUN_SANDBOX", "none")
    assert load_settings().run_sandbox == "none"
    monkeypatch.setenv("RUN_SANDBOX", "docker")
    with pytest.raises(SettingsError, match="RUN_SANDBOX"):
        load_settings()


async def test_without_bwrap_auto_warns_bwrap_fails_and_none_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    auto, required, off = (Settings(run_sandbox=mode) for mode in ("auto", "bwrap", "none"))

    with caplog.at_level(logging.INFO, logger="workflow_service.worker.sandbox"):
        assert sandbox.check_at_startup(auto) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "runs are not sandboxed" in record.message
    readiness = await sandbox.readiness(auto)
    assert readiness.startswith("off (RUN_SANDBOX=auto, bwrap does not work: bwrap is not ")
    assert confine(auto, ["true"], tmp_path) == ["true"]

    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap is not installed"):
        sandbox.check_at_startup(required)
    with pytest.raises(sandbox.SandboxUnavailable):
        await sandbox.readiness(required)
    with pytest.raises(RunFailed, match="sandbox unavailable: RUN_SANDBOX=bwrap"):
        confine(required, ["true"], tmp_path)

    assert sandbox.check_at_startup(off) is False
    assert await sandbox.readiness(off) == "off (RUN_SANDBOX=none): runs are not sandboxed"
    assert confine(off, ["true"], tmp_path) == ["true"]


def test_probe_runs_bwrap_and_reads_its_exit_code(tmp_path: Path) -> None:
    """bwrap installed but not allowed to make namespaces (as in most containers): the
    probe runs it, so auto falls back and the reason is bwrap's own message."""
    refusing = tmp_path / "bwrap"
    refusing.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    refusing.chmod(0o755)
    result = sandbox.probe_result(bwrap=str(refusing))
    assert not result.ok
    assert result.detail == (
        f"{refusing} exited with code 1: bwrap: No permissions to create new namespace"
    )


async def test_readiness_is_ok_with_bwrap(bwrap: None) -> None:
    assert await sandbox.readiness(Settings(run_sandbox="auto")) == "ok"
    assert await sandbox.readiness(Settings(run_sandbox="bwrap")) == "ok"
    assert sandbox.describe(Settings(run_sandbox="auto")).startswith("bwrap (RUN_SANDBOX=auto): ")


# --- escape attempts, one model in a fresh working folder ---------------------


async def test_recorder_writing_up_and_out_is_refused(bwrap: None, outside: Path) -> None:
    workdir = outside / "run"
    ran = await run_model(recorder_to("../escape.csv"), workdir)
    assert "recorder file ../escape.csv: Read-only file system" in ran.console
    assert ran.returncode == ENGINE_FAILED
    assert listing(outside) == ["run", "run/model.glm"]


async def test_recorder_writing_to_an_absolute_path_is_refused(
    bwrap: None, outside: Path, tmp_path: Path
) -> None:
    target = outside / "escape.csv"
    ran = await run_model(recorder_to(str(target)), tmp_path / "run")
    assert f"recorder file {target}: Read-only file system" in ran.console
    assert ran.returncode == ENGINE_FAILED
    assert listing(outside) == [] and ran.files == ["model.glm"]


async def test_writes_to_tmp_stay_in_the_private_tmp(
    bwrap: None, in_tmp: Path, host_tmp_name: Path
) -> None:
    """A working folder in /tmp (the default RUN_WORK_DIR): `../` and /tmp are the
    sandbox's own tmpfs there. The recorder writes, nothing reaches the host."""
    up = await run_model(recorder_to("../escape.csv"), in_tmp / "run-up")
    absolute = await run_model(recorder_to(str(host_tmp_name)), in_tmp / "run-abs")
    for ran in (up, absolute):
        assert ran.returncode == 0, ran.console
        assert "Read-only" not in ran.console and ran.files == ["model.glm"]
    assert listing(in_tmp) == ["run-abs", "run-abs/model.glm", "run-up", "run-up/model.glm"]
    assert not exists(host_tmp_name)


async def test_system_commands_cannot_write_outside(
    bwrap: None, outside: Path, host_tmp_name: Path
) -> None:
    workdir = outside / "run"
    model = (
        f"#system touch {outside}/marker\n"
        "#system touch ../marker\n"
        f"#system touch {host_tmp_name}\n"
        "#system echo allowed > inside.txt\n"
    ) + TINY
    ran = await run_model(model, workdir)
    assert f"touch: cannot touch '{outside}/marker': Read-only file system" in ran.console
    assert "touch: cannot touch '../marker': Read-only file system" in ran.console
    assert ran.returncode == 0  # `#system` failures do not fail a model
    assert ran.files == ["inside.txt", "model.glm", "tiny_out.csv"]
    assert listing(outside) == ["run", *(f"run/{name}" for name in ran.files)]
    assert not exists(host_tmp_name)


async def test_system_commands_have_no_network(bwrap: None, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        connect = f'{sys.executable} -c "import socket; socket.create_connection(({{}}), 2)"'
        model = (
            "#system " + connect.format(f"'127.0.0.1', {port}") + "\n"
            "#system " + connect.format("'192.0.2.1', 80") + "\n"
        ) + TINY
        ran = await run_model(model, tmp_path / "run")
        # The sandbox's loopback is its own; anything else has no route at all.
        assert "ConnectionRefusedError: [Errno 111] Connection refused" in ran.console
        assert "OSError: [Errno 101] Network is unreachable" in ran.console
        listener.settimeout(0.5)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing reached the host's listener

        # The same model without the sandbox does reach it: the test can see a connect.
        await run_model(model, tmp_path / "control", sandboxed=False)
        accepted, _ = listener.accept()
        accepted.close()


async def test_system_commands_see_no_other_process(bwrap: None, tmp_path: Path) -> None:
    model = f"#system kill -0 {os.getpid()} || echo test-process-invisible\n" + TINY
    ran = await run_model(model, tmp_path / "run")
    assert "test-process-invisible" in ran.console
    assert "No such process" in ran.console


def test_writable_folders_and_nothing_else(bwrap: None, outside: Path, tmp_path: Path) -> None:
    """A host-mode script's view: the working folder and the named folders only."""
    workdir, extra = tmp_path / "run", tmp_path / "extra"
    (workdir / "repository").mkdir(parents=True)
    extra.mkdir()
    script = f"pwd; echo a > ../inside.txt; echo b > {extra}/extra.txt; echo c > {outside}/out.txt"
    done = subprocess.run(
        sandbox.wrap(["sh", "-c", script], workdir, cwd=workdir / "repository", writable=[extra]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == f"{workdir / 'repository'}\n"
    assert f"{outside}/out.txt: Read-only file system" in done.stderr
    assert (workdir / "inside.txt").read_text() == "a\n"
    assert (extra / "extra.txt").read_text() == "b\n"
    assert list(outside.iterdir()) == []


async def test_timeout_in_the_sandbox_flushes_and_leaves_no_process(
    bwrap: None, tmp_path: Path
) -> None:
    """SIGTERM to the run's group reaches the engine inside (it flushes its recorders
    and exits 143); nothing in the sandbox outlives the run."""
    run_uuid = uuid.uuid4().hex
    workdir = tmp_path / f"run-{run_uuid[:12]}-x"
    shutil.copytree(MODELS / "long", workdir)
    argv = confine(Settings(run_sandbox="bwrap"), [*ENGINE, "long.glm"], workdir)
    lines: list[str] = []
    outcome = await run_supervised(
        argv,
        cwd=workdir,
        env=clean_environment(workdir),
        timeout=3,
        limits=NO_LIMITS,
        on_stdout=lines.append,
        on_stderr=lines.append,
    )
    assert outcome.timed_out and outcome.returncode == 143, "".join(lines)[-2000:]
    assert "received SIGTERM" in "".join(lines)
    rows = data_rows((workdir / "long_substation.csv").read_bytes())
    assert rows and rows[-1].count(",") == 3  # flushed, last row whole
    await asyncio.sleep(0.2)
    assert engine_processes(run_uuid) == []


# --- end to end: a run's console shows the refusal ----------------------------


async def test_run_console_shows_the_refusal(
    service: Service, outside: Path, tmp_path: Path
) -> None:
    require_bwrap()
    model = tmp_path / "escape.glm"
    model.write_text(f"#system touch {outside}/marker\n" + recorder_to(f"{outside}/escape.csv"))
    pipeline = await service.pipeline(kind="gridlabd", name="escape")
    run = await service.start(pipeline["uuid"], [model])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED" and done["exit_code"] == ENGINE_FAILED, done
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert f"touch: cannot touch '{outside}/marker': Read-only file system" in console["std_err"]
    assert f"recorder file {outside}/escape.csv: Read-only file system" in console["std_err"]
    assert listing(outside) == []
    assert done["artifacts"] == []
