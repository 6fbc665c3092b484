"""The service as real processes for the benchmarks, and the measuring tools they share.

``distributed()`` starts what a production deployment runs: a fresh PostgreSQL
database (``workflow_bench``) migrated by ``workflow-service migrate``, Redis
(database 11, flushed), moto's S3 server or a local artifact folder, the API
(``workflow-service serve`` with ``WEB_CONCURRENCY`` uvicorn processes) and
``workflow-service worker`` processes. Everything is stopped on exit.
BENCH_DATABASE and BENCH_REDIS_URL choose another database and Redis URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
TINY = MODELS / "tiny" / "tiny.glm"
IEEE13 = (MODELS / "ieee13" / "ieee13.glm", MODELS / "ieee13" / "ieee13_l652.player")
BIN = Path(sys.executable).parent
SERVICE = str(BIN / "workflow-service")
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", "workflow_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p50 of [1, 2, 3, 4] is 2)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(value) for value in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """One line of a benchmark's verdict: ``name measured (target) PASS|MISS``."""

    name: str
    measured: float
    bound: float
    at_most: bool
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def __str__(self) -> str:
        sign = "<=" if self.at_most else ">="
        value = f"{self.measured:.3g}{self.unit}"
        return f"{self.name} {value} (target {sign} {self.bound:g}{self.unit}) " + (
            "PASS" if self.met else "MISS"
        )


def verdict(title: str, targets: Sequence[Target]) -> bool:
    """Print the last line of ratios against targets; True when all are met."""
    print(f"RESULT {title}: " + "; ".join(str(target) for target in targets), flush=True)
    return all(target.met for target in targets)


def engine_argv() -> list[str]:
    """The command the worker runs for a gridlabd pipeline (executor.engine_command)."""
    return [sys.executable, "-m", "workflow_service.engine"]


def run_engine_directly(model: Path, root: Path, extra: Sequence[Path] = ()) -> float:
    """One engine run the way a worker prepares it (a fresh folder holding the model and
    the files it reads), without the service; returns its wall time."""
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="direct-", dir=root))
    for path in (model, *extra):
        shutil.copy(path, folder / path.name)
    subprocess.run(
        [*engine_argv(), model.name], cwd=folder, check=True, capture_output=True, timeout=120
    )
    shutil.rmtree(folder)
    return time.perf_counter() - started


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fresh_database() -> str:
    import asyncpg

    async def recreate() -> None:
        connection = await asyncpg.connect(f"{POSTGRES}/postgres")
        try:
            await connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            await connection.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await connection.close()

    # Callers may be inside an event loop: recreate in a thread of its own.
    worker = threading.Thread(target=asyncio.run, args=(recreate(),))
    worker.start()
    worker.join()
    return f"{POSTGRES.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"


def _flush_redis() -> None:
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    connection.close()


@dataclass
class Stack:
    url: str
    client_key: str
    env: dict[str, str]
    folder: Path
    s3_endpoint: str | None = None
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Workflow-API-Key": self.client_key},
            timeout=options.pop("timeout", 60),
            **options,
        )

    def _process(self, argv: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        with log.open("ab") as output:
            return subprocess.Popen(
                argv, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=self.folder
            )

    def start_api(self, processes: int = 1) -> None:
        env = self.env | {"WEB_CONCURRENCY": str(processes)}
        self.api = self._process([SERVICE, "serve"], "api", env)
        _wait_http(f"{self.url}/healthcheck", self.api, self.folder / "api.log", 60)

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        env = self.env | {"WORKER_CONCURRENCY": str(concurrency)}
        worker = self._process([SERVICE, "worker"], f"worker-{len(self.workers)}", env)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop(worker)
        self.workers.clear()

    async def wait_workers(self) -> None:
        """Until a worker polls the queue (it writes arq's health-check key), plus a second
        for the other workers' start-up."""
        import redis.asyncio as redis

        connection = redis.Redis.from_url(REDIS_URL)
        try:
            deadline = time.monotonic() + 60
            while not await connection.exists("arq:queue:health-check"):
                if time.monotonic() > deadline:
                    raise RuntimeError("no worker became ready")
                await asyncio.sleep(0.1)
        finally:
            await connection.aclose()
        await asyncio.sleep(1.0)

    async def pipeline(self, client: httpx.AsyncClient, **body: Any) -> str:
        response = await client.post(
            "/v1/pipelines", json={"name": "bench", "kind": "gridlabd", **body}
        )
        response.raise_for_status()
        return str(response.json()["uuid"])

    async def start_run(
        self,
        client: httpx.AsyncClient,
        pipeline: str,
        model: Path = TINY,
        callback_url: str | None = None,
    ) -> str:
        response = await client.post(
            f"/v1/pipelines/{pipeline}/runs",
            files=[("files", (model.name, await asyncio.to_thread(model.read_bytes)))],
            data={"callback_url": callback_url} if callback_url else None,
        )
        response.raise_for_status()
        return str(response.json()["uuid"])

    async def wait_final(
        self, client: httpx.AsyncClient, pipeline: str, run: str, poll: float = 0.005
    ) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            response = await client.get(f"/v1/pipelines/{pipeline}/runs/{run}")
            response.raise_for_status()
            body = response.json()
            if body["state"] in FINAL:
                return dict(body)
            await asyncio.sleep(poll)
        raise RuntimeError(f"run {run} did not end within 300 s")


def _start_moto(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    _wait_http(f"{url}/moto-api/", process, log, 60)
    return process, url


def _key(env: dict[str, str], permission: str) -> str:
    output = subprocess.run(
        [SERVICE, "create-application-key", "-n", f"bench {permission}", "-p", permission],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output.strip().split("=", 1)[1]


@contextlib.contextmanager
def distributed(*, s3: bool = True, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """PostgreSQL + Redis + S3 (moto) or a local folder; start the API and workers on
    the returned Stack. Logs stay in the stack's folder (printed on failure)."""
    folder = Path(tempfile.mkdtemp(prefix="wfs-bench-"))
    (folder / "runs").mkdir()
    port = free_port()
    env = (
        {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("S3_", "DATABASE_", "STORAGE_", "REDIS_", "WORKER_"))
        }
        | {
            "DATABASE_URL": _fresh_database(),
            "REDIS_URL": REDIS_URL,
            "PORT": str(port),
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "warning",
            "RUN_WORK_DIR": str(folder / "runs"),
            "CREDENTIALS_FILE": str(folder / "credentials.json"),
            "INPUT_URL_ALLOW_PRIVATE": "true",
            "CALLBACK_URL_ALLOW_PRIVATE": "true",
            "WORKER_API_SERVER": f"http://127.0.0.1:{port}",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "0",
        }
        | (extra_env or {})
    )
    _flush_redis()
    stack = Stack(url=f"http://127.0.0.1:{port}", client_key="", env=env, folder=folder)
    failed = False
    try:
        if s3:
            moto, stack.s3_endpoint = _start_moto(folder)
            stack.others.append(moto)
            env |= {
                "S3_ENDPOINT_URL": stack.s3_endpoint,
                "S3_ACCESS_KEY_ID": "bench",
                "S3_SECRET_ACCESS_KEY": "bench",
                "S3_BUCKET": "workflow-bench",
            }
        else:
            env["STORAGE_URL"] = str(folder / "artifacts")
        subprocess.run([SERVICE, "migrate"], env=env, check=True, capture_output=True)
        env["WORKER_API_TOKEN"] = _key(env, "PIPELINES_WORKER")
        stack.client_key = _key(env, "PIPELINES_CLIENT")
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        stack.stop_workers()
        for process in [*([stack.api] if stack.api else []), *stack.others]:
            stop(process)
        if failed:
            for log in sorted(folder.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)


def run_directly_in_parallel(
    model: Path, count: int, parallel: int, root: Path, extra: Sequence[Path] = ()
) -> float:
    """Wall time of ``count`` direct engine runs, ``parallel`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: run_engine_directly(model, root, extra), range(count)))
    return time.perf_counter() - started


async def run_burst(
    stack: Stack, count: int, submitters: int = 4, files: Sequence[Path] = (TINY,)
) -> tuple[float, list[str]]:
    """Submit ``count`` runs of ``files`` (``submitters`` clients at once) and wait for all
    of them by their callbacks; answers the wall time from the first submission to the
    last final state, and the run uuids. Every run must complete."""
    receiver = CallbackReceiver()
    try:
        async with stack.client() as client:
            pipeline = await stack.pipeline(client)
            uploads = [(path.name, await asyncio.to_thread(path.read_bytes)) for path in files]
            runs: list[str] = []
            pending = iter(range(count))

            async def submit() -> None:
                for _ in pending:
                    response = await client.post(
                        f"/v1/pipelines/{pipeline}/runs",
                        files=[("files", upload) for upload in uploads],
                        data={"callback_url": receiver.url},
                    )
                    response.raise_for_status()
                    runs.append(str(response.json()["uuid"]))

            started = time.perf_counter()
            await asyncio.gather(*(submit() for _ in range(submitters)))
            ended = await asyncio.to_thread(receiver.wait, set(runs))
            failed = [run for run, (_, state) in ended.items() if state != "COMPLETED"]
            if failed:
                raise RuntimeError(f"{len(failed)} runs did not complete, e.g. {failed[0]}")
            return max(when for when, _ in ended.values()) - started, runs
    finally:
        receiver.close()


def script_repository(folder: Path, script: str) -> str:
    """A git repository (branch main) holding ``run.sh``; answers its file:// URL."""
    folder.mkdir(parents=True)
    (folder / "run.sh").write_text(script)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(folder)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run([*git, "add", "run.sh"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench script"], check=True)
    return folder.as_uri()


def script_pipeline(repository: str) -> dict[str, str]:
    """The body of a script pipeline running ``run.sh`` of ``repository`` on the host."""
    return {
        "kind": "script",
        "docker_image_url": "debian:bookworm",
        "repository_ssh_url": repository,
        "repository_branch": "main",
        "repository_script": "run.sh",
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of the process itself (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process alive now (backends of the pools stay)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


class CpuMeter:
    """CPU seconds spent by each part of the stack between ``start`` and ``stop``."""

    def __init__(self, stack: Stack) -> None:
        self.parts: dict[str, list[int]] = {
            "API": [stack.api.pid] if stack.api else [],
            "worker (without engines)": [worker.pid for worker in stack.workers],
            "S3 (moto)": [process.pid for process in stack.others],
        }
        self.before: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        spent = {name: sum(map(cpu_seconds, pids)) for name, pids in self.parts.items()}
        return spent | {"PostgreSQL": postgres_cpu_seconds()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        return {name: value - self.before[name] for name, value in self._read().items()}


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, mean."""
    return percentile(values, 0.5), percentile(values, 0.95), statistics.fmean(values)


class CallbackReceiver:
    """Records when each run's callbacks arrive, so throughput needs no polling load."""

    def __init__(self) -> None:
        self.final: dict[str, tuple[float, str]] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()
                if body["state"] in FINAL:
                    with receiver.changed:
                        receiver.final[body["pipeline_run_uuid"]] = (
                            time.perf_counter(),
                            body["state"],
                        )
                        receiver.changed.notify_all()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, runs: set[str], timeout: float = 600) -> dict[str, tuple[float, str]]:
        with self.changed:
            if not self.changed.wait_for(lambda: runs <= self.final.keys(), timeout):
                raise RuntimeError(f"{len(runs - self.final.keys())} runs did not end")
            return {run: self.final[run] for run in runs}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
