"""Benchmark 1 — dispatch overhead: the tiny model run directly vs through the service.

Each of N rounds runs the engine directly (a fresh folder holding the model, the
same command a worker runs) and then through the service (multipart create →
COMPLETED seen by polling GET every 5 ms; distributed: PostgreSQL, Redis, S3 on
moto, one worker process with one slot). Overhead = service time - direct time of
the same round. The service's own timestamps split it: API (create → NOT_STARTED),
pickup (NOT_STARTED → RUNNING), execution (RUNNING → COMPLETED: preparation, engine,
artifact upload, final report).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from stack import TINY, Target, distributed, run_engine_directly, summary, table, verdict

ROUNDS = int(os.environ.get("BENCH_DISPATCH_ROUNDS", "50"))
WARM_UP = 3


def _when(run: dict[str, object], state: str) -> datetime:
    states = run["states"]
    assert isinstance(states, list)
    return datetime.fromisoformat(next(s["created_at"] for s in states if s["state"] == state))


async def main() -> bool:
    with tempfile.TemporaryDirectory(prefix="wfs-direct-") as scratch:
        return await measure(Path(scratch))


async def measure(root: Path) -> bool:
    with distributed() as stack:
        stack.start_api()
        stack.start_worker(concurrency=1)
        await stack.wait_workers()
        async with stack.client() as client:
            pipeline = await stack.pipeline(client)
            rows: list[tuple[float, float, float, float, float]] = []
            for round_ in range(WARM_UP + ROUNDS):
                direct = await asyncio.to_thread(run_engine_directly, TINY, root)
                started = time.perf_counter()
                run_uuid = await stack.start_run(client, pipeline)
                run = await stack.wait_final(client, pipeline, run_uuid)
                service = time.perf_counter() - started
                if run["state"] != "COMPLETED":
                    raise RuntimeError(f"run {run_uuid} ended {run['state']}")
                if round_ < WARM_UP:
                    continue
                queued = _when(run, "NOT_STARTED")
                running = _when(run, "RUNNING")
                completed = _when(run, "COMPLETED")
                rows.append(
                    (
                        direct,
                        service,
                        (running - queued).total_seconds(),
                        (completed - running).total_seconds(),
                        service - direct,
                    )
                )
    columns = list(zip(*rows, strict=True))
    ms = [[f"{1000 * value:.0f}" for value in summary(column)] for column in columns]
    print(f"tiny model, {ROUNDS} rounds (+{WARM_UP} warm-up), times in ms")
    print(
        table(
            ["", "direct", "service", "pickup", "execution", "overhead"],
            [[label, *(m[i] for m in ms)] for i, label in enumerate(["p50", "p95", "mean"])],
        )
    )
    overhead_p50, overhead_p95, _ = summary(columns[4])
    return verdict(
        "dispatch",
        [
            Target("overhead p50", 1000 * overhead_p50, 100, at_most=True, unit=" ms"),
            Target("overhead p95", 1000 * overhead_p95, 250, at_most=True, unit=" ms"),
        ],
    )


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
