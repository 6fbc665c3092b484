"""Benchmark 3 — API throughput and latency at concurrency 16.

The service runs distributed (PostgreSQL, Redis, local artifact folder, no worker: runs
stay NOT_STARTED): ``workflow-service serve`` with 2 uvicorn processes and no access log.
``wrk`` (16 connections on 2 threads, a 2 s warm-up, then BENCH_API_SECONDS (8) of
measurement per scenario) drives, in this order:

- baseline: a bare FastAPI app (baseline_app.py, also 2 uvicorn processes) doing
  one primary-key SELECT of a run on the same database;
- GET run: a run with 3 states, 2 URL inputs and 2 artifacts;
- create run: JSON body with 2 URL inputs, committed and enqueued on Redis;
- list runs: the first page (``?limit=20``) of a pipeline holding 10,000 runs, then
  again once 90,000 more are added (100,000); each run has 4 states, 2 inputs,
  2 artifacts and a 4 KB console, inserted directly in PostgreSQL (then VACUUM ANALYZE);
- console append: 10 KB of stdout per request (worker key) spread over 1,024 RUNNING
  runs whose consoles start empty, each request at its run's next offset; then the
  same on 64 runs whose stdout is already at the 1 MiB cap (MAX_CONSOLE_BYTES), as a
  worker's long run reaches after ~50 s of output (informative, no target).

Besides req/s and latency, each row shows the CPU time per request of the server's
processes and of the PostgreSQL backends of the benchmark's database, read from /proc:
on a shared 2-core machine they vary far less than req/s.

Targets: GET run >= 0.5 x baseline req/s; list p50 <= 20 ms (10k) and <= 40 ms (100k).
That no request's statement count grows with its rows is tests/runs/test_query_counts.py.
Needs wrk: ``apt-get install -y wrk``. Run from bench/: ``../.venv/bin/python api.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import httpx

from stack import (
    DATABASE,
    POSTGRES,
    Stack,
    Target,
    distributed,
    free_port,
    stop,
    table,
    verdict,
)

SECONDS = int(os.environ.get("BENCH_API_SECONDS", "8"))
WARM_UP_SECONDS = 2
CONNECTIONS = 16
THREADS = 2
LIST_RUNS = 10_000
LIST_RUNS_LARGE = 100_000
PAGE = 20
CONSOLE_RUNS = 1024
CONSOLE_FULL_RUNS = 64
CHUNK_CHARS = 10 * 1024
CONSOLE_CAP = 1024**2
BENCH = Path(__file__).resolve().parent
INPUTS = ["feeder.glm", "weather.csv"]
ARTIFACTS = ["voltages.csv", "losses.csv"]
HEADER = "Workflow-API-Key"


@dataclass(frozen=True)
class Measured:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    app_cpu_ms: float = 0.0
    """CPU time of the server's processes per request."""
    db_cpu_ms: float = 0.0
    """CPU time of the PostgreSQL backends of the benchmark's database per request."""


def console_text(chars: int, seed: int) -> str:
    """Console-like lines (a counter, a phrase, random hex) that compress little, like
    varied engine output (a repeated line would shrink to nothing in PostgreSQL)."""
    generator = random.Random(seed)  # noqa: S311 - filler text, not a secret
    lines: list[str] = []
    length = 0
    while length < chars:
        line = f"{len(lines):06d} solver step ok {generator.getrandbits(256):064x}\n"
        lines.append(line)
        length += len(line)
    return "".join(lines)[:chars]


# --- wrk ---------------------------------------------------------------------------------


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        print("wrk is required: apt-get install -y wrk", file=sys.stderr)
        sys.exit(2)
    return found


def lua_string(text: str) -> str:
    """A Lua long string literal: ``text`` as is, no escapes."""
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def static_script(key: str | None, method: str = "GET", body: str | None = None) -> str:
    """Every request the same: ``method``, the API key header, a JSON ``body``."""
    lines = [f"wrk.method = {lua_string(method)}"]
    if key is not None:
        # The spaces matter: "[[" would open a long string.
        lines.append(f"wrk.headers[ {lua_string(HEADER)} ] = {lua_string(key)}")
    if body is not None:
        lines += [
            f"wrk.body = {lua_string(body)}",
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    return "\n".join(lines) + "\n"


def console_script(key: str, runs: Sequence[tuple[str, int]], chunk: str) -> str:
    """POST 10 KB console chunks. Run with one connection per wrk thread: each thread
    cycles over its share of ``runs`` (path, next offset), one request at a time, and
    advances a run's offset as it sends (a chunk ahead of the stored console is a 400)."""
    entries = ",\n".join(f"  {{{lua_string(path)}, {offset}}}" for path, offset in runs)
    return (
        static_script(key, "POST")
        + 'wrk.headers["Content-Type"] = "application/json"\n'
        + f"local runs = {{\n{entries}\n}}\n"
        + f"local chunk = {lua_string(json.dumps(chunk))}\n"
        + f"local size = {len(chunk)}\n"
        + """local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local mine, offsets, turn = {}, {}, 0
function init(args)
  for i, run in ipairs(runs) do
    if (i - 1) % """
        + str(CONNECTIONS)
        + """ == tid then
      mine[#mine + 1] = run[1]
      offsets[#mine] = run[2]
    end
  end
end
local checked = false
function request()
  if tid == 0 and not checked then
    -- wrk builds thread 0's first request to check the script and never sends it
    checked = true
    return wrk.format(nil, mine[1], nil, "{}")
  end
  turn = turn % #mine + 1
  local offset = offsets[turn]
  offsets[turn] = offset + size
  local body = '{"std_out":{"offset":' .. offset .. ',"data":' .. chunk .. '}}'
  return wrk.format(nil, mine[turn], nil, body)
end
local told = false
function response(status, headers, body)
  if status >= 300 and not told then
    told = true
    io.stderr:write(status .. " " .. body .. "\\n")
  end
end
"""
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(output: str, percent: int) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no {percent}% latency in wrk's output:\n{output}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def run_wrk(name: str, url: str, script: str, seconds: int, threads: int) -> Measured:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        completed = subprocess.run(
            [
                wrk_binary(),
                f"-t{threads}",
                f"-c{CONNECTIONS}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                file.name,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        Path(file.name).unlink()
    output = completed.stdout
    if completed.stderr.strip():  # a Lua error: wrk goes on with the default request
        raise RuntimeError(f"{name}: wrk: {completed.stderr}\n{output}")
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if failed or errors:
        raise RuntimeError(f"{name}: wrk saw failures:\n{output}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise RuntimeError(f"{name}: unexpected wrk output:\n{output}")
    return Measured(
        name,
        float(rps.group(1)),
        _latency_ms(output, 50),
        _latency_ms(output, 99),
        int(total.group(1)),
    )


# --- CPU per request (the machine may be shared: req/s alone is noisy) -----------------

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of all its threads) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and each of its descendants (uvicorn's workers)."""
    stats = {
        int(entry.name): found
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None
    }
    tree, pending = {}, [root]
    while pending:
        pid = pending.pop()
        if pid in stats:
            tree[pid] = stats[pid][1]
            pending.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return tree


async def backends_cpu() -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to the benchmark's database."""
    connection = await asyncpg.connect(_dsn())
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            DATABASE,
        )
    finally:
        await connection.close()
    return {row["pid"]: found[1] for row in rows if (found := _stat(row["pid"])) is not None}


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def measure(
    name: str,
    url: str,
    script: str,
    server: int,
    *,
    warm_up: bool = True,
    threads: int = THREADS,
) -> Measured:
    """wrk on ``url`` (a warm-up run first), and the CPU the ``server`` process tree and
    the database spent per request."""
    if warm_up:
        await asyncio.to_thread(run_wrk, name, url, script, WARM_UP_SECONDS, threads)
    app, database = tree_cpu(server), await backends_cpu()
    measured = await asyncio.to_thread(run_wrk, name, url, script, SECONDS, threads)
    app_spent = _spent(app, tree_cpu(server))
    database_spent = _spent(database, await backends_cpu())
    measured = replace(
        measured,
        app_cpu_ms=1000 * app_spent / measured.requests,
        db_cpu_ms=1000 * database_spent / measured.requests,
    )
    print(
        f"  {name}: {measured.rps:.0f} req/s, p50 {measured.p50_ms:.1f} ms, "
        f"p99 {measured.p99_ms:.1f} ms, CPU/request {measured.app_cpu_ms:.2f} ms server"
        f" + {measured.db_cpu_ms:.2f} ms PostgreSQL",
        flush=True,
    )
    return measured


# --- data set-up -------------------------------------------------------------------------


def _dsn() -> str:
    return f"{POSTGRES}/{DATABASE}"


async def _pipeline_id(connection: asyncpg.Connection, pipeline_uuid: str) -> int:
    return int(await connection.fetchval("SELECT id FROM pipeline WHERE uuid = $1", pipeline_uuid))


_INSERT_RUNS = """
INSERT INTO pipeline_run (
    uuid, pipeline_id, sequence, state, callback_url, defines, progress, exit_code,
    failure_reason, started_at, completed_at, heartbeat_at, attempt, worker_claim,
    std_out, std_err, std_out_size, std_err_size, is_deleted, created_at, updated_at)
SELECT replace(gen_random_uuid()::text, '-', ''), $1, s, $4::text, NULL, '{}'::jsonb,
    CASE WHEN $4::text = 'COMPLETED' THEN 100 END, CASE WHEN $4::text = 'COMPLETED' THEN 0 END,
    NULL, now(), CASE WHEN $4::text = 'COMPLETED' THEN now() END, now(), 1,
    replace(gen_random_uuid()::text, '-', ''),
    $5::text, $6::text, length($5::text), length($6::text), false, now(), now()
FROM generate_series($2::int, $3::int) AS s
"""
_RUNS = "FROM pipeline_run r WHERE r.pipeline_id = $1 AND r.sequence BETWEEN $2 AND $3"
_INSERT_STATES = f"""
INSERT INTO pipeline_run_state (run_id, state, created_at)
SELECT r.id, st.state, r.created_at + st.o * interval '1 second'
{_RUNS.replace("WHERE", "CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS st(state, o) WHERE")}
ORDER BY r.id, st.o
"""
_INSERT_INPUTS = f"""
INSERT INTO pipeline_run_input (run_id, name, url)
SELECT r.id, i.name, 'https://example.com/data/' || i.name
{_RUNS.replace("WHERE", "CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS i(name, o) WHERE")}
ORDER BY r.id, i.o
"""
_INSERT_ARTIFACTS = f"""
INSERT INTO artifact (
    uuid, run_id, name, key, size, sha256, content_type, created_at, updated_at)
SELECT replace(gen_random_uuid()::text, '-', ''), r.id, a.name,
    $5 || '/' || r.uuid || '/' || a.name, 4096 + a.o,
    encode(sha256(convert_to(r.uuid || a.name, 'UTF8')), 'hex'), 'text/csv', now(), now()
{_RUNS.replace("WHERE", "CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS a(name, o) WHERE")}
ORDER BY r.id, a.o
"""


async def add_runs(
    pipeline_uuid: str,
    first: int,
    last: int,
    *,
    state: str,
    states: Sequence[str],
    inputs: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    std_out: str = "",
    std_err: str = "",
) -> None:
    """Runs ``first``..``last`` (their sequence numbers) of a pipeline, in bulk."""
    connection = await asyncpg.connect(_dsn())
    try:
        async with connection.transaction():
            pipeline_id = await _pipeline_id(connection, pipeline_uuid)
            await connection.execute(
                _INSERT_RUNS, pipeline_id, first, last, state, std_out, std_err
            )
            span = (pipeline_id, first, last)
            await connection.execute(_INSERT_STATES, *span, list(states))
            if inputs:
                await connection.execute(_INSERT_INPUTS, *span, list(inputs))
            if artifacts:
                await connection.execute(_INSERT_ARTIFACTS, *span, list(artifacts), pipeline_uuid)
            await connection.execute(
                "UPDATE pipeline SET run_count = greatest(run_count, $2) WHERE id = $1",
                pipeline_id,
                last,
            )
        # As autovacuum would, but now: not in the middle of a measurement.
        for name in ("pipeline_run", "pipeline_run_state", "pipeline_run_input", "artifact"):
            await connection.execute(f"VACUUM (ANALYZE) {name}")
    finally:
        await connection.close()


async def add_list_runs(pipeline_uuid: str, first: int, last: int) -> float:
    started = time.perf_counter()
    await add_runs(
        pipeline_uuid,
        first,
        last,
        state="COMPLETED",
        states=["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"],
        inputs=INPUTS,
        artifacts=ARTIFACTS,
        std_out=console_text(4096, 1),
        std_err=console_text(512, 2),
    )
    return time.perf_counter() - started


async def add_console_runs(pipeline_uuid: str, count: int, std_out: str) -> None:
    """RUNNING runs (3 states, heartbeat now) whose stdout holds ``std_out``."""
    states = ["QUEUED", "NOT_STARTED", "RUNNING"]
    await add_runs(pipeline_uuid, 1, count, state="RUNNING", states=states, std_out=std_out)


async def console_offsets(pipeline_uuid: str) -> list[tuple[str, int]]:
    """(console path, next stdout offset) of each of the pipeline's runs."""
    connection = await asyncpg.connect(_dsn())
    try:
        rows = await connection.fetch(
            "SELECT r.uuid, r.std_out_size FROM pipeline_run r JOIN pipeline p"
            " ON p.id = r.pipeline_id WHERE p.uuid = $1 ORDER BY r.id",
            pipeline_uuid,
        )
    finally:
        await connection.close()
    return [
        (f"/v1/pipelines/{pipeline_uuid}/runs/{row['uuid']}/console", int(row["std_out_size"]))
        for row in rows
    ]


async def console_sizes(pipeline_uuid: str) -> tuple[float, float]:
    """Mean stdout size received and kept (characters) of the pipeline's runs."""
    connection = await asyncpg.connect(_dsn())
    try:
        row = await connection.fetchrow(
            "SELECT avg(r.std_out_size), avg(length(r.std_out)) FROM pipeline_run r"
            " JOIN pipeline p ON p.id = r.pipeline_id WHERE p.uuid = $1",
            pipeline_uuid,
        )
    finally:
        await connection.close()
    assert row is not None
    return float(row[0]), float(row[1])


async def run_id(run_uuid: str) -> int:
    connection = await asyncpg.connect(_dsn())
    try:
        return int(
            await connection.fetchval("SELECT id FROM pipeline_run WHERE uuid = $1", run_uuid)
        )
    finally:
        await connection.close()


def url_inputs(base: str) -> dict[str, list[dict[str, str]]]:
    return {"inputs": [{"name": name, "url": f"{base}/data/{name}"} for name in INPUTS]}


async def full_run(stack: Stack, client: httpx.AsyncClient) -> tuple[str, str]:
    """Through the API: a run with 2 URL inputs, RUNNING under a claim (3 states), and
    2 artifacts uploaded by the worker."""
    worker = {HEADER: stack.env["WORKER_API_TOKEN"]}
    pipeline = await stack.pipeline(client, name="get")
    created = await client.post(
        f"/v1/pipelines/{pipeline}/runs", json=url_inputs("https://example.com")
    )
    created.raise_for_status()
    path = f"/v1/pipelines/{pipeline}/runs/{created.json()['uuid']}"
    running = await client.put(
        f"{path}/state", json={"state": "RUNNING", "claim": uuid.uuid4().hex}, headers=worker
    )
    running.raise_for_status()
    for index, name in enumerate(ARTIFACTS):
        uploaded = await client.post(
            f"{path}/artifacts",
            params={"name": name},
            content=console_text(4096 + index, 10 + index).encode(),
            headers=worker | {"Content-Type": "text/csv"},
        )
        uploaded.raise_for_status()
    run = (await client.get(path)).raise_for_status().json()
    shape = (len(run["states"]), len(run["inputs"]), len(run["artifacts"]))
    if shape != (3, 2, 2):
        raise RuntimeError(f"the GET run fixture has (states, inputs, artifacts) = {shape}")
    return pipeline, str(run["uuid"])


# --- the baseline server -----------------------------------------------------------------


def start_baseline(stack: Stack, probe: str) -> tuple[subprocess.Popen[bytes], str]:
    """The baseline app on a port of its own; the process and the URL of ``probe``."""
    port = free_port()
    log = stack.folder / "baseline.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "baseline_app:app",
                "--app-dir",
                str(BENCH),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--no-access-log",
                "--log-level",
                "warning",
                "--no-proxy-headers",
            ],
            env=stack.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=stack.folder,
        )
    url = f"http://127.0.0.1:{port}{probe}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"baseline app exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError("baseline app did not answer within 60 s")
        time.sleep(0.1)


# --- the benchmark -----------------------------------------------------------------------


async def main() -> bool:
    wrk_binary()
    results: list[Measured] = []
    notes: list[str] = []
    with distributed(s3=False, extra_env={"HEARTBEAT_TIMEOUT_SECONDS": "3600"}) as stack:
        stack.start_api(processes=2)
        client_key, worker_key = stack.client_key, stack.env["WORKER_API_TOKEN"]
        async with stack.client() as client:
            get_pipeline, get_run = await full_run(stack, client)
            create_pipeline = await stack.pipeline(client, name="create")
            list_pipeline = await stack.pipeline(client, name="list")
            console_pipeline = await stack.pipeline(client, name="console")
            full_pipeline = await stack.pipeline(client, name="console-full")
        seconds = await add_list_runs(list_pipeline, 1, LIST_RUNS)
        notes.append(f"{LIST_RUNS:,} runs inserted in {seconds:.1f} s")
        await add_console_runs(console_pipeline, CONSOLE_RUNS, "")
        await add_console_runs(full_pipeline, CONSOLE_FULL_RUNS, console_text(CONSOLE_CAP, 3))

        baseline, baseline_url = start_baseline(stack, f"/runs/{await run_id(get_run)}")
        try:
            results.append(
                await measure("baseline", baseline_url, static_script(None), baseline.pid)
            )
        finally:
            stop(baseline)

        api, server = stack.url, stack.api.pid if stack.api else 0
        results.append(
            await measure(
                "GET run",
                f"{api}/v1/pipelines/{get_pipeline}/runs/{get_run}",
                static_script(client_key),
                server,
            )
        )
        results.append(
            await measure(
                "create run",
                f"{api}/v1/pipelines/{create_pipeline}/runs",
                static_script(client_key, "POST", json.dumps(url_inputs(api))),
                server,
            )
        )
        list_url = f"{api}/v1/pipelines/{list_pipeline}/runs?limit={PAGE}"
        for runs in (LIST_RUNS, LIST_RUNS_LARGE):
            if runs > LIST_RUNS:
                seconds = await add_list_runs(list_pipeline, LIST_RUNS + 1, runs)
                notes.append(f"{runs - LIST_RUNS:,} more runs inserted in {seconds:.1f} s")
            name = f"list runs ({runs // 1000}k)"
            results.append(await measure(name, list_url, static_script(client_key), server))

        chunk = console_text(CHUNK_CHARS, 4)
        for name, pipeline in (
            ("console append", console_pipeline),
            ("console append (1 MiB)", full_pipeline),
        ):
            # No warm-up of its own: each run's offsets must be read right before.
            script = console_script(worker_key, await console_offsets(pipeline), chunk)
            results.append(
                await measure(name, api, script, server, warm_up=False, threads=CONNECTIONS)
            )
            received, kept = await console_sizes(pipeline)
            notes.append(
                f"{name}: stdout per run after it {received / 1024:.0f} KiB received,"
                f" {kept / 1024:.0f} KiB kept"
            )

    print(
        f"\nwrk: {THREADS} threads ({CONNECTIONS} for the console), {CONNECTIONS} connections,"
        f" {WARM_UP_SECONDS} s warm-up + {SECONDS} s per scenario; API and baseline:"
        " 2 uvicorn processes each, PostgreSQL. CPU ms/request: the server's processes,"
        " and the PostgreSQL backends of the benchmark's database."
    )
    print(
        table(
            ["scenario", "req/s", "p50 ms", "p99 ms", "requests", "server CPU", "db CPU"],
            [
                [
                    m.name,
                    f"{m.rps:.0f}",
                    f"{m.p50_ms:.1f}",
                    f"{m.p99_ms:.1f}",
                    m.requests,
                    f"{m.app_cpu_ms:.2f}",
                    f"{m.db_cpu_ms:.2f}",
                ]
                for m in results
            ],
        )
    )
    for note in notes:
        print(note)
    by_name = {m.name: m for m in results}
    get, base = by_name["GET run"], by_name["baseline"]
    print(
        f"GET run costs {get.app_cpu_ms / base.app_cpu_ms:.1f}x the baseline's server CPU"
        f" and {get.db_cpu_ms / base.db_cpu_ms:.1f}x its PostgreSQL CPU per request"
    )
    return verdict(
        "api",
        [
            Target(
                "GET run / baseline req/s",
                get.rps / base.rps,
                0.5,
                at_most=False,
                unit="x",
            ),
            Target("list p50 (10k runs)", by_name["list runs (10k)"].p50_ms, 20, True, " ms"),
            Target("list p50 (100k runs)", by_name["list runs (100k)"].p50_ms, 40, True, " ms"),
        ],
    )


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
