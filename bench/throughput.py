"""Benchmark 2 — throughput: 200 tiny runs through the service with two worker slots
(one `workflow-service worker`, WORKER_CONCURRENCY=2) vs the same 200 engine runs
two at a time directly. Service time: first submission to the last COMPLETED callback
(four clients submit concurrently, so execution overlaps submission as it would).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from stack import TINY, Target, distributed, run_burst, run_directly_in_parallel, table, verdict

RUNS = int(os.environ.get("BENCH_THROUGHPUT_RUNS", "200"))
SLOTS = 2


async def main() -> bool:
    root = Path(tempfile.mkdtemp(prefix="wfs-direct-"))
    direct = await asyncio.to_thread(run_directly_in_parallel, TINY, RUNS, SLOTS, root)
    with distributed() as stack:
        stack.start_api()
        stack.start_worker(concurrency=SLOTS)
        await stack.wait_workers()
        await run_burst(stack, 4)  # warm-up
        service, _ = await run_burst(stack, RUNS)
    print(f"tiny model, {RUNS} runs, {SLOTS} at a time")
    print(
        table(
            ["", "seconds", "runs/s"],
            [
                ["direct", f"{direct:.1f}", f"{RUNS / direct:.1f}"],
                ["service", f"{service:.1f}", f"{RUNS / service:.1f}"],
            ],
        )
    )
    return verdict("throughput", [Target("service/direct", direct / service, 0.85, at_most=False)])


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
