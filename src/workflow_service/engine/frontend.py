"""``gridlabd [-D name=value]... model.glm`` on the PyPI ``gridlabd`` bindings.

The wheel ships no ``gridlabd`` executable, so this module drives the in-process
binding (``gridlabd.DirectGridLabD``) the way ``../shared/ENGINE-NOTES.md``
prescribes and behaves like the executable for the common case: it runs the
model in the current working directory, writes every engine message to stderr
(stdout stays empty), and flushes and closes all recorder files on every exit,
including after SIGTERM and SIGINT.

Command line::

    python -m workflow_service.engine [-D name=value | --define name=value]... MODEL
    python -m workflow_service.engine --help | --version

Exit codes:

=====  ======================  ==============================================
code   constant                meaning
=====  ======================  ==============================================
0      ``EXIT_OK``             the simulation reached its stop time
64     ``EXIT_USAGE``          bad arguments: unknown option, malformed
                               ``-D``, no model or more than one, model file
                               missing or unreadable (nothing was loaded)
2      ``EXIT_LOAD``           the model did not load: syntax error, missing
                               include, unknown module/class/property or
                               ``#macro``, or a model without objects
3      ``EXIT_START``          the simulation could not start:
                               ``setup_after_load`` failed, object
                               initialisation failed (e.g. a missing weather
                               file), or the clock cannot leave the start time
                               (e.g. a missing player file)
4      ``EXIT_RUN``            the simulation failed after it started: a step
                               failed (e.g. non-convergent powerflow, even at
                               the first time step) or an object stopped the
                               clock later (e.g. a bad player row)
130    ``EXIT_SIGINT``         stopped by SIGINT; recorder files are complete
143    ``EXIT_SIGTERM``        stopped by SIGTERM; recorder files are complete
=====  ======================  ==============================================

The engine can still end the process with codes of its own: 255 when it exits
from inside ``step()`` (e.g. on a player row whose time does not parse), 137
after SIGKILL, 153 when ``RLIMIT_FSIZE`` is exceeded. A supervisor should treat
any code but 0 as a failure. Signals are acted on between steps; during the
first step, which initialises the objects, the engine's own handlers are in
place (SIGTERM still exits 143).

Progress (stderr, one line each, for the worker to parse with
``PROGRESS_RE``)::

    progress: 37% 2020-07-01 08:52:00 PDT
    progress: - 2020-07-01 08:52:00 PDT

The first form is printed whenever the integer percent of
``(clock - start) / (stop - start)`` grows; it never decreases and the last one
of a successful run is ``100%``. The timestamp is the simulation clock exactly
as GridLAB-D prints it (the model's ``dateformat`` and time zone). The percent
is computed from local wall-clock times, so across a daylight-saving change it
can be off by the one hour. The second form is printed about once a wall-clock
second when the stop time is not a finite time after the start time (e.g.
``-D stoptime=NEVER`` on a model whose clock sets no stop time).

When a run fails or is stopped, the front end prints GridLAB-D's own closing
line, ``FATAL    [<clock>] : shutdown after simulation stopped prematurely``,
or ``ERROR    [<clock>] : received SIGTERM; exiting now``, after the engine's
messages.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import NoReturn, Protocol

EXIT_OK = 0
EXIT_LOAD = 2
EXIT_START = 3
EXIT_RUN = 4
EXIT_USAGE = 64
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

EXIT_MEANINGS: Mapping[int, str] = {
    EXIT_OK: "success",
    EXIT_LOAD: "the model did not load",
    EXIT_START: "the simulation could not start",
    EXIT_RUN: "the simulation failed",
    EXIT_USAGE: "bad engine arguments",
    EXIT_SIGINT: "stopped by SIGINT",
    EXIT_SIGTERM: "stopped by SIGTERM",
}
"""A short meaning of each exit code, for messages."""

PROGRESS_RE = r"^progress: (\d+)% "
"""The regular expression that matches a percent progress line (group 1: the percent)."""

USAGE = "usage: python -m workflow_service.engine [-D name=value]... model.glm"

HELP = f"""{USAGE}

Runs one GridLAB-D model in the current working directory, like
`gridlabd [-D name=value]... model.glm`. Engine messages and progress lines go
to stderr.

options:
  -D, --define name=value  define a global or macro before loading (repeatable)
  -h, --help               show this help and exit
  --version                show the gridlabd package version and exit

exit codes:
""" + "".join(f"  {code:<3}  {meaning}\n" for code, meaning in EXIT_MEANINGS.items())

# A loader diagnostic such as `bad_syntax.glm(15): expected ';' ...`.
_LOADER_LINE = re.compile(rb"^.+\(\d+\): ", re.MULTILINE)

# How GridLAB-D prints a time for each `dateformat`, as the field order of the
# date part; the time part is always `HH:MM:SS`.
_DATE_ORDER = {"ISO": (0, 1, 2), "US": (2, 0, 1), "EURO": (2, 1, 0)}

_NO_STOP_PROGRESS_SECONDS = 1.0


class _Engine(Protocol):
    """The part of ``gridlabd.DirectGridLabD`` this module uses."""

    def set_global(self, name: str, value: str) -> int: ...
    def get_global(self, name: str) -> str: ...
    def load_glm(self, arguments: Sequence[str]) -> object: ...
    def object_get_count(self) -> int: ...
    def setup_after_load(self) -> object: ...
    def step(self) -> tuple[object, str]: ...
    def get_messages(self) -> list[dict[str, str]]: ...
    def clear_messages(self) -> None: ...
    def exit_gld(self, filepath: str) -> object: ...


class _UsageError(Exception):
    pass


def main(argv: Sequence[str]) -> NoReturn:
    """Run ``[-D name=value]... model`` and exit with one of the codes above."""
    try:
        parsed = _parse_args(argv)
    except _UsageError as error:
        print(f"{USAGE}\nerror: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if isinstance(parsed, str):
        if parsed == "help":
            print(HELP, end="")
        else:
            from importlib.metadata import version

            print(f"gridlabd {version('gridlabd')}")
        sys.exit(EXIT_OK)
    model, defines = parsed
    _prepare_process()
    import gridlabd  # type: ignore[import-untyped]  # here, not at the top: it costs ~0.1 s

    _Run(gridlabd, model, defines).execute()


def _parse_args(argv: Sequence[str]) -> str | tuple[str, list[str]]:
    """``"help"``, ``"version"`` or (model, defines); checked here because an
    option the engine does not know makes ``load_glm`` call ``exit(1)``."""
    models: list[str] = []
    defines: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("-h", "--help"):
            return "help"
        if arg == "--version":
            return "version"
        if arg in ("-D", "--define"):
            value = next(args, None)
            if value is None:
                raise _UsageError(f"{arg} needs a name=value argument")
            name, equals, _ = value.partition("=")
            if not equals or not name.strip():
                raise _UsageError(f"{arg} {value!r} is not name=value")
            defines.append(value)
        elif arg.startswith("-"):
            raise _UsageError(f"unknown option {arg!r}")
        else:
            models.append(arg)
    if len(models) != 1:
        raise _UsageError(
            "no model file given" if not models else f"more than one model file: {models}"
        )
    model = models[0]
    if not Path(model).is_file() or not os.access(model, os.R_OK):
        raise _UsageError(f"cannot read model file {model!r}")
    return model, defines


def _prepare_process() -> None:
    """The process set-up ENGINE-NOTES requires before ``import gridlabd``."""
    for variable in ("GRIDLABD_ROOT", "GRIDLABD_HOME"):
        folder = os.environ.get(variable)
        if folder is not None and not Path(folder).is_dir():
            # The binding exits 255 silently when these name a missing folder.
            del os.environ[variable]
    # Python ignores SIGXFSZ, so an exceeded file-size limit would truncate
    # recorder files silently instead of killing the run.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    # The engine prints warnings and #print to stdout, errors to stderr.
    os.dup2(2, 1)


def _parse_time(text: str, order: tuple[int, int, int]) -> datetime | None:
    """A GridLAB-D time string as a naive local time (the zone name dropped);
    None for NEVER, INIT and other non-times."""
    fields = text[:10].split("-")
    if len(fields) != 3:
        return None
    try:
        return datetime.fromisoformat(
            f"{fields[order[0]]}-{fields[order[1]]}-{fields[order[2]]}{text[10:19]}"
        )
    except ValueError:
        return None


class _Run:
    """One model, one run, one process: the binding allows nothing else."""

    def __init__(self, gridlabd: ModuleType, model: str, defines: list[str]) -> None:
        self.model = model
        self.defines = defines
        self.signal_exit: int | None = None
        self.clock = "INIT"
        self._install_signal_handlers()
        self.success: object = gridlabd.GLDErrorCode.SUCCESS
        # In-process: gridlabd.GridLabD() runs a worker that outlives a SIGTERM.
        self.gld: _Engine = gridlabd.DirectGridLabD()
        self.gld.set_global("checkpoint_type", "NONE")  # else it writes _checkpoint.json
        self.gld.set_global("show_progress", "FALSE")

    def execute(self) -> NoReturn:
        if not self._load():
            self._exit(EXIT_LOAD)
        self._exit_if_signalled()
        if self.gld.setup_after_load() != self.success:
            self._fatal("setup after load failed")
            self._exit(EXIT_START)
        self._exit_if_signalled()
        self._exit(self._simulate())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_exit is None:
            self.signal_exit = 128 + signum

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _load(self) -> bool:
        """Load the model, capturing fd 2 to see loader lines: an unknown
        ``#macro`` returns SUCCESS with a truncated model and only says so there."""
        import tempfile

        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                code = self.gld.load_glm([self.model, *_define_args(self.defines)])
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            captured = capture.read()
        sys.stderr.buffer.write(captured)
        sys.stderr.flush()
        if code != self.success:
            return False  # the engine has said why
        if self.gld.object_get_count() > 0 and _LOADER_LINE.search(captured) is None:
            return True
        self._fatal(f"failed to load model file: {self.model}")
        return False

    def _simulate(self) -> int:
        """Step to the stop time, printing progress; the exit code."""
        order = _DATE_ORDER.get(self.gld.get_global("dateformat"), _DATE_ORDER["ISO"])
        self.clock = self.gld.get_global("clock")
        start = _parse_time(self.gld.get_global("starttime"), order)
        stop = _parse_time(self.gld.get_global("stoptime"), order)
        total = (stop - start).total_seconds() if start and stop else 0.0
        progress = _Progress(start if total > 0 else None, total)
        self.gld.clear_messages()
        first = True
        while True:
            previous = self.clock
            code, self.clock = self.gld.step()
            if first:
                # The first step installs the engine's own handlers, which
                # ignore SIGINT under step().
                self._install_signal_handlers()
            if code != self.success:
                started = not first or not self._messages_at_init()
                return self._failed(EXIT_RUN if started else EXIT_START)
            now = _parse_time(self.clock, order)
            if self._clock_stopped(previous):
                return self._failed(EXIT_START if first else EXIT_RUN)
            if now is None or (stop is not None and now >= stop):
                progress.finish(self.gld.get_global("stoptime"))
                return EXIT_OK
            if self.signal_exit is not None:
                return self._signalled()
            progress.update(now, self.clock)
            self.gld.clear_messages()
            first = False

    def _clock_stopped(self, previous: str) -> bool:
        """Whether an object stopped the clock in the last step, which still
        returned SUCCESS; the next step() would exit 255 without a message."""
        # The engine sets exit_code when an object stops its clock, even when
        # the step got as far as a new time (a bad player row mid-run).
        if self.gld.get_global("exit_code") != "0":
            return True
        return self.clock == previous and bool(self._errors())

    def _errors(self) -> list[dict[str, str]]:
        return [m for m in self.gld.get_messages() if m.get("type") in ("ERROR", "FATAL")]

    def _messages_at_init(self) -> bool:
        """Whether the failed step failed while initialising objects."""
        return any(m.get("timestamp") == "INIT" for m in self._errors())

    def _failed(self, code: int) -> int:
        self._fatal("shutdown after simulation stopped prematurely")
        return code

    def _fatal(self, text: str) -> None:
        print(f"FATAL    [{self.clock}] : {text}", file=sys.stderr)

    def _signalled(self) -> int:
        code = self.signal_exit or EXIT_SIGTERM
        name = signal.Signals(code - 128).name
        print(f"ERROR    [{self.clock}] : received {name}; exiting now", file=sys.stderr)
        return code

    def _exit_if_signalled(self) -> None:
        if self.signal_exit is not None:
            self._exit(self._signalled())

    def _exit(self, code: int) -> NoReturn:
        """Set the exit code and let ``exit_gld`` finalise, flush and close the
        recorders and call C ``exit()``; ``finally`` and ``atexit`` do not run."""
        self.gld.set_global("exit_code", str(code))
        sys.stdout.flush()
        sys.stderr.flush()
        self.gld.exit_gld("")
        os._exit(code)  # only reached if a future binding's exit_gld returns


def _define_args(defines: list[str]) -> list[str]:
    return [arg for define in defines for arg in ("-D", define)]


class _Progress:
    """Writes the progress lines described in the module docstring."""

    def __init__(self, start: datetime | None, total_seconds: float) -> None:
        self.start = start
        self.total = total_seconds
        self.percent = -1
        self.last_print = time.monotonic()

    def update(self, now: datetime, clock: str) -> None:
        if self.start is None:
            if time.monotonic() - self.last_print >= _NO_STOP_PROGRESS_SECONDS:
                self.last_print = time.monotonic()
                _write(f"progress: - {clock}\n")
            return
        percent = min(100, int(100 * (now - self.start).total_seconds() / self.total))
        if percent > self.percent:
            self.percent = percent
            _write(f"progress: {percent}% {clock}\n")

    def finish(self, stoptime: str) -> None:
        if self.start is not None and self.percent < 100:
            self.percent = 100
            _write(f"progress: 100% {stoptime}\n")


def _write(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()
