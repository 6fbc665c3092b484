"""Benchmark 2 — throughput: tiny runs through the service with two worker slots
(one `workflow-service worker`, WORKER_CONCURRENCY=2) vs the same engine runs two at
a time directly. Service time: first submission to the last COMPLETED callback (four
clients submit concurrently, so execution overlaps submission as it would).

The tiny model (~60 ms) measures the service's cost per run; the IEEE 13-node day
(~0.6 s) shows the ratio once the engine does real work. The CPU table says where
the service's time goes: on this machine the API, PostgreSQL and the S3 server share
the two cores with the engines.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from stack import (
    IEEE13,
    TINY,
    CpuMeter,
    Stack,
    Target,
    distributed,
    run_burst,
    run_directly_in_parallel,
    run_engine_directly,
    table,
    verdict,
)

RUNS = int(os.environ.get("BENCH_THROUGHPUT_RUNS", "200"))
IEEE13_RUNS = int(os.environ.get("BENCH_THROUGHPUT_IEEE13_RUNS", "30"))
SLOTS = 2


def _engine_cpu_seconds(root: Path) -> float:
    """CPU time of one direct tiny run (mean of ten)."""
    before = os.times()
    for _ in range(10):
        run_engine_directly(TINY, root)
    after = os.times()
    spent = after.children_user + after.children_system
    return (spent - before.children_user - before.children_system) / 10


async def _measure(
    stack: Stack, root: Path, files: tuple[Path, ...], count: int
) -> tuple[float, float, dict[str, float]]:
    model, *extra = files
    direct = await asyncio.to_thread(run_directly_in_parallel, model, count, SLOTS, root, extra)
    await run_burst(stack, 4, files=files)  # warm-up
    meter = CpuMeter(stack)
    meter.start()
    service, _ = await run_burst(stack, count, files=files)
    return direct, service, meter.stop()


async def main() -> bool:
    with tempfile.TemporaryDirectory(prefix="wfs-direct-") as scratch:
        return await measure(Path(scratch))


async def measure(root: Path) -> bool:
    with distributed() as stack:
        stack.start_api()
        stack.start_worker(concurrency=SLOTS)
        await stack.wait_workers()
        direct, service, spent = await _measure(stack, root, (TINY,), RUNS)
        big_direct, big_service, _ = await _measure(stack, root, IEEE13, IEEE13_RUNS)
    engine_cpu = await asyncio.to_thread(_engine_cpu_seconds, root)
    rows = [
        ["tiny", RUNS, f"{RUNS / direct:.1f}", f"{RUNS / service:.1f}", f"{direct / service:.2f}"],
        [
            "ieee13",
            IEEE13_RUNS,
            f"{IEEE13_RUNS / big_direct:.2f}",
            f"{IEEE13_RUNS / big_service:.2f}",
            f"{big_direct / big_service:.2f}",
        ],
    ]
    print(f"{SLOTS} at a time")
    print(table(["model", "runs", "direct runs/s", "service runs/s", "ratio"], rows))
    print(f"\nCPU per tiny run (ms); the machine has {os.cpu_count()} CPUs")
    parts = [["engine (measured directly)", f"{1000 * engine_cpu:.0f}"]]
    parts += [[name, f"{1000 * seconds / RUNS:.0f}"] for name, seconds in spent.items()]
    total = engine_cpu + sum(spent.values()) / RUNS
    parts.append(["total", f"{1000 * total:.0f}"])
    print(table(["part", "CPU ms/run"], parts))
    print(
        f"CPU-bound ceiling here: {(os.cpu_count() or 1) / total:.1f} tiny runs/s through the "
        f"service, {(os.cpu_count() or 1) / engine_cpu:.1f} directly"
    )
    return verdict(
        "throughput",
        [
            Target("tiny service/direct", direct / service, 0.85, at_most=False),
            Target("ieee13 service/direct", big_direct / big_service, 0.85, at_most=False),
        ],
    )


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
