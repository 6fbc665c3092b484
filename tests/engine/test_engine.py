"""The engine front end run as a real subprocess on the sample models in tests/models/.

Expected outputs come from each model's README. `heavy` and `long` take 30-120 s
in full, so they are only run shortened or cancelled.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from workflow_service.engine import (
    EXIT_LOAD,
    EXIT_OK,
    EXIT_RUN,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_START,
    EXIT_USAGE,
    PROGRESS_RE,
)

MODELS = Path(__file__).parent.parent / "models"
ENGINE = [sys.executable, "-m", "workflow_service.engine"]


def run_engine(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENGINE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def model(tmp_path: Path) -> Callable[[str], Path]:
    """Copies tests/models/<name> into tmp_path: the engine writes into its cwd."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(MODELS / name, tmp_path / name))

    return copy


def data_rows(csv: Path) -> list[str]:
    """The lines after the `#` header lines (9 for a recorder or collector)."""
    return [line for line in csv.read_text().splitlines() if not line.startswith("#")]


def progress_percents(stderr: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(PROGRESS_RE, stderr, re.MULTILINE)]


def assert_ran_cleanly(result: subprocess.CompletedProcess[str], folder: Path, stop: str) -> None:
    """Exit 0, nothing on stdout, no checkpoint, and percent progress up to 100% at stop."""
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert not (folder / "_checkpoint.json").exists()
    percents = progress_percents(result.stderr)
    assert percents, result.stderr
    assert percents == sorted(percents)
    assert percents[-1] == 100
    last = [line for line in result.stderr.splitlines() if line.startswith("progress: ")][-1]
    assert last == f"progress: 100% {stop}"


def test_tiny(model: Callable[[str], Path]) -> None:
    folder = model("tiny")
    result = run_engine(folder, "tiny.glm")
    assert_ran_cleanly(result, folder, "2020-01-01 01:00:00 PST")
    assert "solver_KLU could not be found" in result.stderr
    rows = data_rows(folder / "tiny_out.csv")
    assert len(rows) == 60
    assert rows[0] == (
        "2020-01-01 00:00:00 PST,+2390.33-0.164162d,+2393.38-120.174d,+2392.15+119.801d"
    )
    assert rows[-1].startswith("2020-01-01 00:59:00 PST,")
    assert {row.partition(",")[2] for row in rows} == {rows[0].partition(",")[2]}
    # The exact line format: percent, then the clock as GridLAB-D prints it.
    assert "\nprogress: 50% 2020-01-01 00:30:00 PST\n" in result.stderr


def test_tiny_define_changes_the_load(model: Callable[[str], Path]) -> None:
    folder = model("tiny")
    result = run_engine(folder, "--define", "LOAD_W=200000", "tiny.glm")
    assert_ran_cleanly(result, folder, "2020-01-01 01:00:00 PST")
    rows = data_rows(folder / "tiny_out.csv")
    assert len(rows) == 60
    assert rows[0].startswith("2020-01-01 00:00:00 PST,+2383.83-0.406159d,")


def test_ieee13(model: Callable[[str], Path]) -> None:
    folder = model("ieee13")
    result = run_engine(folder, "ieee13.glm")
    assert_ran_cleanly(result, folder, "2020-07-02 00:00:00 PDT")
    assert "phase N conductor should just be a normal conductor!" in result.stderr
    for name in ("ieee13_substation.csv", "ieee13_v675.csv", "ieee13_v634.csv"):
        rows = data_rows(folder / name)
        assert len(rows) == 1440, name
        assert rows[0].startswith("2020-07-01 00:00:00 PDT,"), name
        assert rows[-1].startswith("2020-07-01 23:59:00 PDT,"), name
    assert data_rows(folder / "ieee13_v675.csv")[0] == (
        "2020-07-01 00:00:00 PDT,+2449.33-3.71656d,+2550.74-121.73d,+2439.17+116.687d"
    )


def test_ieee13_knobs(model: Callable[[str], Path]) -> None:
    folder = model("ieee13")
    result = run_engine(
        folder, "-D", "STOPTIME=2020-07-01 06:00:00 PDT", "-D", "INTERVAL=300", "ieee13.glm"
    )
    assert_ran_cleanly(result, folder, "2020-07-01 06:00:00 PDT")
    for name in ("ieee13_substation.csv", "ieee13_v675.csv", "ieee13_v634.csv"):
        rows = data_rows(folder / name)
        assert len(rows) == 72, name
        assert rows[-1].startswith("2020-07-01 05:55:00 PDT,"), name


def test_ieee123_public_model(model: Callable[[str], Path]) -> None:
    folder = model("ieee123")
    result = run_engine(folder, "ieee123_switching.glm")
    assert_ran_cleanly(result, folder, "2000-01-01 17:00:00 EST")
    assert len(data_rows(folder / "switching_123_output.csv")) == 34


def test_heavy_shortened(model: Callable[[str], Path]) -> None:
    folder = model("heavy")
    stop = "2020-07-01 06:00:00 PDT"
    result = run_engine(folder, "-D", f"STOPTIME={stop}", "heavy.glm")
    assert_ran_cleanly(result, folder, stop)
    # 5-minute rows from the 00:00 start up to, not including, the stop time.
    elapsed = datetime(2020, 7, 1, 6) - datetime(2020, 7, 1, 0)
    expected_rows = int(elapsed.total_seconds()) // 300
    assert expected_rows == 72
    for name in ("heavy_substation.csv", "heavy_v675.csv", "heavy_load.csv", "heavy_temp.csv"):
        rows = data_rows(folder / name)
        assert len(rows) == expected_rows, name
        assert rows[0].startswith("2020-07-01 00:00:00 PDT,"), name
        assert rows[-1].startswith("2020-07-01 05:55:00 PDT,"), name
    assert data_rows(folder / "heavy_load.csv")[0].endswith(",+89.598")
    assert data_rows(folder / "heavy_temp.csv")[0].endswith(",+73.253")


def test_bad_syntax_is_a_load_failure(model: Callable[[str], Path]) -> None:
    folder = model("bad_syntax")
    result = run_engine(folder, "bad_syntax.glm")
    assert result.returncode == EXIT_LOAD
    assert result.stdout == ""
    for line in (
        "bad_syntax.glm(15): expected ';' at end of property specification",
        "bad_syntax.glm(12): load failed at or near 'object load ...'",
        "FATAL    [INIT] : failed to load model file: bad_syntax.glm",
    ):
        assert line in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "bad_syntax.glm"]


def test_unknown_macro_is_a_load_failure(tmp_path: Path) -> None:
    """The binding returns SUCCESS with a truncated model: only the loader line tells."""
    lines = (MODELS / "tiny" / "tiny.glm").read_text().splitlines(keepends=True)
    lines.insert(lines.index("module tape;\n"), "#frobnicate now\n")
    (tmp_path / "macro.glm").write_text("".join(lines))
    result = run_engine(tmp_path, "macro.glm")
    assert result.returncode == EXIT_LOAD
    assert "macro command '#frobnicate' is not recognized" in result.stderr
    assert not (tmp_path / "tiny_out.csv").exists()


def test_missing_input_is_a_start_failure(model: Callable[[str], Path]) -> None:
    folder = model("missing_input")
    result = run_engine(folder, "missing_input.glm")
    assert result.returncode == EXIT_START
    assert result.stdout == ""
    for line in (
        "FATAL    [2020-01-01 00:00:00 PST] : sync_player: Unable to open player file "
        "'load_schedule.player' for object 'player_auto_6'",
        "ERROR    [2020-01-01 00:00:00 PST] : 2020-01-01 00:00:00 PST: object player_auto_6 "
        "stopped its clock (exec)!",
        "FATAL    [2020-01-01 00:00:00 PST] : shutdown after simulation stopped prematurely",
    ):
        assert line in result.stderr
    assert data_rows(folder / "missing_input_out.csv") == []
    assert progress_percents(result.stderr) == []
    assert not (folder / "_checkpoint.json").exists()


def test_missing_input_with_its_player_succeeds(model: Callable[[str], Path]) -> None:
    folder = model("missing_input")
    (folder / "load_schedule.player").write_text(
        "2020-01-01 00:00:00 PST,100000+50000j\n2020-01-01 00:30:00 PST,150000+60000j\n"
    )
    result = run_engine(folder, "missing_input.glm")
    assert_ran_cleanly(result, folder, "2020-01-01 01:00:00 PST")
    rows = data_rows(folder / "missing_input_out.csv")
    assert len(rows) == 60
    assert rows[29].partition(",")[2] != rows[30].partition(",")[2]


def test_bad_player_row_mid_run_is_a_run_failure(model: Callable[[str], Path]) -> None:
    """The step reaches 00:30 and returns SUCCESS, but the player has stopped the
    clock there: only the engine's exit_code global says so."""
    folder = model("missing_input")
    (folder / "load_schedule.player").write_text(
        "2020-01-01 00:00:00 PST,100000+50000j\n2020-01-01 00:30:00 PST,garbage\n"
    )
    result = run_engine(folder, "missing_input.glm")
    assert result.returncode == EXIT_RUN, result.stderr
    assert "sync_player:5: failed to set value: garbage" in result.stderr
    assert (
        "FATAL    [2020-01-01 00:30:00 PST] : shutdown after simulation stopped prematurely"
        in result.stderr
    )
    assert len(data_rows(folder / "missing_input_out.csv")) == 30


def test_nonconvergent_is_a_run_failure(model: Callable[[str], Path]) -> None:
    folder = model("nonconvergent")
    result = run_engine(folder, "nonconvergent.glm")
    assert result.returncode == EXIT_RUN
    assert result.stdout == ""
    clock = "[2020-01-01 00:00:00 PST]"
    for line in (
        f"ERROR    {clock} : convergence iteration limit reached for object node:0",
        f"ERROR    {clock} : convergence iteration limit reached at 2020-01-01 00:00:00 PST",
        f"ERROR    {clock} : exec_step halted: convergence failure",
        f"FATAL    {clock} : shutdown after simulation stopped prematurely",
    ):
        assert line in result.stderr
    assert data_rows(folder / "nonconvergent_out.csv") == []
    assert not (folder / "_checkpoint.json").exists()


def test_missing_weather_is_a_start_failure(model: Callable[[str], Path]) -> None:
    folder = model("heavy")
    (folder / "weather.csv").unlink()
    result = run_engine(folder, "heavy.glm")
    assert result.returncode == EXIT_START
    assert "weather file 'weather.csv' access failed" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no model file given"),
        (("tiny.glm", "tiny.glm"), "more than one model file"),
        (("--foo", "tiny.glm"), "unknown option '--foo'"),
        (("missing.glm",), "cannot read model file 'missing.glm'"),
        (("-D", "LOAD_W", "tiny.glm"), "is not name=value"),
        (("tiny.glm", "-D"), "-D needs a name=value argument"),
    ],
)
def test_usage_errors(model: Callable[[str], Path], args: tuple[str, ...], message: str) -> None:
    folder = model("tiny")
    started = time.monotonic()
    result = run_engine(folder, *args, timeout=10)
    assert result.returncode == EXIT_USAGE
    assert time.monotonic() - started < 5  # rejected before the engine loads anything
    assert result.stdout == ""
    assert result.stderr.startswith("usage: ")
    assert message in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "tiny.glm"]


def test_help_and_version(tmp_path: Path) -> None:
    result = run_engine(tmp_path, "--help")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: ")
    result = run_engine(tmp_path, "--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"gridlabd {version('gridlabd')}\n"


def test_importing_the_package_does_not_import_gridlabd() -> None:
    code = "import sys, workflow_service.engine; print('gridlabd' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"


Starter = Callable[..., tuple[subprocess.Popen[bytes], Path]]


@pytest.fixture
def start_engine() -> Iterator[Starter]:
    """Starts the engine in the background with stderr to a file; kills what is left."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(folder: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        stderr = folder.parent / f"{folder.name}.stderr"
        with stderr.open("wb") as sink:
            process = subprocess.Popen(
                [*ENGINE, *args], cwd=folder, stdout=subprocess.PIPE, stderr=sink
            )
        processes.append(process)
        return process, stderr

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for(stderr: Path, pattern: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = stderr.read_text()
        if re.search(pattern, text, re.MULTILINE):
            return text
        assert process.poll() is None, text
        time.sleep(0.05)
    pytest.fail(f"no {pattern!r} on stderr in 30 s")


def processes_in(folder: Path) -> list[int]:
    """Pids of live processes whose working directory is folder."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").readlink() == folder.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, EXIT_SIGTERM), (signal.SIGINT, EXIT_SIGINT)]
)
def test_long_run_stops_cleanly_on_signal(
    model: Callable[[str], Path], start_engine: Starter, signum: signal.Signals, code: int
) -> None:
    folder = model("long")
    process, stderr = start_engine(folder, "long.glm")
    # Past 2% (about 3 simulated hours) each hourly recorder holds a few rows.
    wait_for(stderr, r"^progress: ([2-9]|\d\d)% ", process)
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == code
    assert stdout == b""
    assert f"received {signum.name}; exiting now" in stderr.read_text()
    substation = data_rows(folder / "long_substation.csv")
    temperature = data_rows(folder / "long_temp.csv")
    # The tape recorder is block-buffered: its rows exist only if the exit flushed it.
    assert len(substation) == len(temperature) >= 2
    for name in ("long_substation.csv", "long_temp.csv"):
        assert (folder / name).read_bytes().endswith(b"\n"), name
    assert all(len(row.split(",")) == 4 for row in substation)
    assert not (folder / "_checkpoint.json").exists()
    assert processes_in(folder) == []


def test_no_stop_time_reports_the_clock(tmp_path: Path, start_engine: Starter) -> None:
    """The clock block's stoptime wins over -D, so the model must not set one."""
    folder = tmp_path / "nostop"
    folder.mkdir()
    glm = (MODELS / "tiny" / "tiny.glm").read_text()
    stoptime = "  stoptime '2020-01-01 01:00:00';\n"
    assert stoptime in glm
    (folder / "nostop.glm").write_text(glm.replace(stoptime, ""))
    process, stderr = start_engine(folder, "-D", "stoptime=NEVER", "nostop.glm")
    text = wait_for(stderr, r"^progress: - 2020-\d\d-\d\d \d\d:\d\d:\d\d P[SD]T\n", process)
    assert progress_percents(text) == []
    process.terminate()
    process.communicate(timeout=10)
    assert process.returncode == EXIT_SIGTERM
    assert (folder / "tiny_out.csv").read_bytes().endswith(b"\n")
