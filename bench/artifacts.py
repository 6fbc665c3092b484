"""Benchmark 4 — artifact streaming: a 1 GiB output file through the service vs directly.

A cached file of random bytes (in /var/tmp, which the run sandbox can read) is the
output of a ``script`` pipeline: its repository (a local git repo made here) holds
``run.sh``, which copies the file into ``$OPENFIDO_OUTPUT``, fsyncs it and prints
``date +%s.%N`` as its last line.

Upload (S3 on moto): the worker's upload is measured as the run's COMPLETED time
(the API's timestamp) minus that last line: multipart upload with SHA-256, artifact
registration, working folder removal and the final state report. The baseline is
a plain aioboto3 ``upload_file`` (default TransferConfig; the service's client
config: path-style, checksums only when required) of the same file to the same moto
server, another bucket, done first while the service is idle. The worker's peak RSS
growth is its VmHWM at the end (reset through /proc/PID/clear_refs before the run)
minus its VmRSS before the run; the worker process only, not its children.

Download (local artifact folder): the same run on a second stack, then
``GET /v1/artifacts/{uuid}`` streamed with a blocking httpx client (bytes discarded)
vs reading the stored file in Python (``readinto`` of 1 MiB blocks); both with a
warm page cache (the file is read once before timing), best of
BENCH_ARTIFACT_REPEATS. The same GET with curl into /dev/null is shown, without a
target, for what the API serves when the client costs almost nothing, and so is
the ceiling of any download here: the same bytes from memory over loopback TCP.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from stack import Stack, Target, distributed, script_pipeline, script_repository, table, verdict

SIZE = int(os.environ.get("BENCH_ARTIFACT_BYTES", str(1024**3)))
REPEATS = int(os.environ.get("BENCH_ARTIFACT_REPEATS", "3"))
NAME = "big.bin"
BLOCK = 1024 * 1024
MB = 1e6
MiB = 1024 * 1024


def make_source(folder: Path) -> str:
    """SIZE random bytes, flushed to disk; returns their SHA-256."""
    digest = hashlib.sha256()
    with (folder / NAME).open("wb") as file:
        left = SIZE
        while left:
            block = os.urandom(min(16 * MiB, left))
            digest.update(block)
            file.write(block)
            left -= len(block)
        file.flush()
        os.fsync(file.fileno())
    return digest.hexdigest()


def make_script(source: Path) -> str:
    """run.sh: copy `source` into the output, timestamps before and after."""
    return (
        "set -e\n"
        "date +%s.%N\n"
        f"cp '{source}' \"$OPENFIDO_OUTPUT/{NAME}\"\n"
        f'sync "$OPENFIDO_OUTPUT/{NAME}"\n'
        "date +%s.%N\n"
    )


def status(pid: int | str) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int | str) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _when(run: dict[str, Any], state: str) -> float:
    created = next(s["created_at"] for s in run["states"] if s["state"] == state)
    return datetime.fromisoformat(created).timestamp()


async def produce(stack: Stack, repository: str) -> tuple[dict[str, Any], float, int]:
    """One script run leaving the big file; returns the final run, the seconds from the
    script's last line to COMPLETED, and the worker's peak RSS growth in bytes."""
    worker = stack.workers[0].pid
    async with stack.client() as client:
        response = await client.post(
            "/v1/pipelines", json={"name": "big artifact", **script_pipeline(repository)}
        )
        response.raise_for_status()
        pipeline = response.json()["uuid"]
        if not reset_peak(worker):
            print("(cannot reset the worker's VmHWM: its peak since start-up is used)")
        before = status(worker)["VmRSS"]
        response = await client.post(f"/v1/pipelines/{pipeline}/runs", json={})
        response.raise_for_status()
        run_uuid = response.json()["uuid"]
        # Slow polling: the API shares the 2 cores with the upload; the timing comes from
        # the service's own timestamps, not from when the poll sees the end.
        run = await stack.wait_final(client, pipeline, run_uuid, poll=0.5)
        growth = status(worker)["VmHWM"] - before
        console = (await client.get(f"/v1/pipelines/{pipeline}/runs/{run_uuid}/console")).json()
    if run["state"] != "COMPLETED":
        raise RuntimeError(f"run ended {run['state']}: {run['failure_reason']}\n{console}")
    stamps = [float(line) for line in console["std_out"].split()]
    return run, _when(run, "COMPLETED") - stamps[-1], growth


async def baseline_upload(stack: Stack, path: Path) -> tuple[float, int]:
    """aioboto3 upload_file with the default TransferConfig; seconds and this process's
    peak RSS growth."""
    import aioboto3  # type: ignore[import-untyped]
    from aiobotocore.config import AioConfig

    session = aioboto3.Session(
        aws_access_key_id=stack.env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with session.client("s3", endpoint_url=stack.s3_endpoint, config=config) as s3:
        await s3.create_bucket(Bucket="baseline")
        reset_peak("self")
        before = status("self")["VmRSS"]
        started = time.perf_counter()
        await s3.upload_file(str(path), "baseline", NAME)
        seconds = time.perf_counter() - started
        growth = status("self")["VmHWM"] - before
        head = await s3.head_object(Bucket="baseline", Key=NAME)
        assert head["ContentLength"] == SIZE
        await s3.delete_object(Bucket="baseline", Key=NAME)
    return seconds, growth


def read_file(path: Path) -> float:
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    started = time.perf_counter()
    total = 0
    with path.open("rb", buffering=0) as file:
        while read := file.readinto(view):
            total += read
    seconds = time.perf_counter() - started
    assert total == SIZE
    return seconds


def download(stack: Stack, artifact: str) -> float:
    """GET the artifact with a blocking httpx client (run it in a thread): async httpx
    tops out near 400 MB/s here, bound by its own per-read overhead (64 KiB reads
    through anyio), the blocking client near twice that."""
    headers = {"Workflow-API-Key": stack.client_key}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=300) as client:
        started = time.perf_counter()
        total = 0
        with client.stream("GET", f"/v1/artifacts/{artifact}") as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                total += len(chunk)
        seconds = time.perf_counter() - started
    assert total == SIZE, total
    return seconds


def curl(stack: Stack, artifact: str) -> float | None:
    """The same download with curl into /dev/null: what the API serves when the client
    costs nearly nothing (informative, no target)."""
    if shutil.which("curl") is None:
        return None
    started = time.perf_counter()
    subprocess.run(
        ["curl", "--silent", "--fail", "--output", "/dev/null", "--header",
         f"Workflow-API-Key: {stack.client_key}", f"{stack.url}/v1/artifacts/{artifact}"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def loopback() -> float:
    """SIZE bytes from memory over a loopback TCP connection (sendall / recv_into of
    1 MiB blocks, no HTTP): the ceiling of any download here (informative, no target)."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def send() -> None:
            connection, _ = server.accept()
            with connection:
                block = bytes(BLOCK)
                for offset in range(0, SIZE, BLOCK):
                    connection.sendall(block[: min(BLOCK, SIZE - offset)])

        sender = threading.Thread(target=send)
        sender.start()
        buffer = memoryview(bytearray(BLOCK))
        total = 0
        with socket.create_connection(server.getsockname()) as receiver:
            started = time.perf_counter()
            while read := receiver.recv_into(buffer):
                total += read
            seconds = time.perf_counter() - started
        sender.join()
    assert total == SIZE
    return seconds


def mbps(seconds: float) -> str:
    return f"{SIZE / MB / seconds:.0f}"


async def main() -> bool:
    cache = Path(tempfile.mkdtemp(prefix="wfs-bench-artifacts-", dir="/var/tmp"))
    rows: list[list[object]] = []
    try:
        started = time.perf_counter()
        sha256 = await asyncio.to_thread(make_source, cache)
        print(f"{SIZE / MiB:.0f} MiB of random bytes made in {time.perf_counter() - started:.1f} s")
        repository = script_repository(cache / "repository", make_script(cache / NAME))
        read_file(cache / NAME)  # warm

        with distributed() as stack:
            stack.start_api()
            stack.start_worker(concurrency=1)
            await stack.wait_workers()
            plain, plain_rss = await baseline_upload(stack, cache / NAME)
            run, upload, worker_rss = await produce(stack, repository)
            artifact = run["artifacts"][0]
            assert (artifact["size"], artifact["sha256"]) == (SIZE, sha256), artifact
        rows += [
            ["aioboto3 upload_file → moto", f"{plain:.2f}", mbps(plain), f"{plain_rss / MB:.0f}"],
            ["worker upload → moto", f"{upload:.2f}", mbps(upload), f"{worker_rss / MB:.0f}"],
        ]

        with distributed(s3=False) as stack:
            stack.start_api()
            stack.start_worker(concurrency=1)
            await stack.wait_workers()
            run, local_upload, local_rss = await produce(stack, repository)
            artifact = run["artifacts"][0]
            assert (artifact["size"], artifact["sha256"]) == (SIZE, sha256), artifact
            stored = next((stack.folder / "artifacts").rglob(f"*{NAME}"))
            read_file(stored)  # warm
            reads, downloads, curls, raw = [], [], [], []
            for _ in range(REPEATS):
                raw.append(await asyncio.to_thread(loopback))
                reads.append(read_file(stored))
                downloads.append(await asyncio.to_thread(download, stack, artifact["uuid"]))
                curls.append(await asyncio.to_thread(curl, stack, artifact["uuid"]))
            read, fetched = min(reads), min(downloads)
        rows += [
            [
                "worker store → local folder",
                f"{local_upload:.2f}",
                mbps(local_upload),
                f"{local_rss / MB:.0f}",
            ],
            ["read stored file (1 MiB readinto)", f"{read:.2f}", mbps(read), ""],
            ["GET /v1/artifacts/{uuid} (httpx sync)", f"{fetched:.2f}", mbps(fetched), ""],
        ]
        if None not in curls:
            served = min(c for c in curls if c is not None)
            rows.append(["the same GET with curl (no target)", f"{served:.2f}", mbps(served), ""])
        ceiling = min(raw)
        rows.append(["loopback TCP, no HTTP (no target)", f"{ceiling:.2f}", mbps(ceiling), ""])
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    print(
        f"one {SIZE / MiB:.0f} MiB artifact; worker upload = COMPLETED state time - the "
        "script's last line (upload with SHA-256 + registration + cleanup + final state); "
        f"downloads best of {REPEATS}, warm page cache; RSS growth = peak - RSS before (MB)"
    )
    print(table(["", "seconds", "MB/s", "RSS growth MB"], rows))
    return verdict(
        "artifacts",
        [
            Target("upload ratio", plain / upload, 0.8, at_most=False),
            Target("worker RSS growth", worker_rss / MB, 64, at_most=True, unit=" MB"),
            Target("download ratio", read / fetched, 0.8, at_most=False),
        ],
    )


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
