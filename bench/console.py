"""Benchmark 5 — console latency: from a line printed by a running run to its
visibility through `GET …/console` (polled every 20 ms) and through the live stream
(`GET …/console/stream`, server-sent events).

The run is a script pipeline printing `tick <n> <unix time>` every 100 ms; each line
carries the moment it was printed, so latency = first seen - printed (one clock:
everything runs on this machine).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx

from stack import (
    Target,
    distributed,
    percentile,
    script_pipeline,
    script_repository,
    table,
    verdict,
)

LINES = int(os.environ.get("BENCH_CONSOLE_LINES", "100"))
SCRIPT = f"""for n in $(seq 1 {LINES}); do
  echo "tick $n $(date +%s.%N)"
  sleep 0.1
done
"""


def _ticks(text: str, seen: dict[int, float], now: float) -> None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "tick":
            seen.setdefault(int(parts[1]), now - float(parts[2]))


async def _poll(client: httpx.AsyncClient, url: str, seen: dict[int, float]) -> None:
    while len(seen) < LINES:
        response = await client.get(f"{url}/console")
        _ticks(response.json()["std_out"], seen, time.time())
        await asyncio.sleep(0.02)


async def _stream(client: httpx.AsyncClient, url: str, seen: dict[int, float]) -> None:
    async with client.stream("GET", f"{url}/console/stream") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "std_out":
                _ticks(line.removeprefix("data:").strip(), seen, time.time())
            if event == "end" or len(seen) >= LINES:
                return


async def main() -> bool:
    with distributed() as stack:
        repository = script_repository(stack.folder / "repository", SCRIPT)
        stack.start_api()
        stack.start_worker(concurrency=1)
        await stack.wait_workers()
        async with stack.client(timeout=120) as client:
            response = await client.post(
                "/v1/pipelines", json={"name": "ticks", **script_pipeline(repository)}
            )
            response.raise_for_status()
            pipeline = response.json()["uuid"]
            created = await client.post(f"/v1/pipelines/{pipeline}/runs", json={})
            created.raise_for_status()
            url = f"/v1/pipelines/{pipeline}/runs/{created.json()['uuid']}"
            polled: dict[int, float] = {}
            streamed: dict[int, float] = {}
            await asyncio.wait_for(
                asyncio.gather(_poll(client, url, polled), _stream(client, url, streamed)), 120
            )
            run = await stack.wait_final(client, pipeline, created.json()["uuid"])
            if run["state"] != "COMPLETED":
                raise RuntimeError(f"the run ended {run['state']}: {run['failure_reason']}")
    rows = []
    for name, seen in (("GET console", polled), ("stream", streamed)):
        values = list(seen.values())
        rows.append(
            [name, len(values), *(f"{1000 * percentile(values, q):.0f}" for q in (0.5, 0.95, 0.99))]
        )
    print(f"{LINES} lines, one every 100 ms; latency in ms")
    print(table(["via", "lines", "p50", "p95", "p99"], rows))
    return verdict(
        "console",
        [
            Target("GET p99", percentile(list(polled.values()), 0.99), 1.0, True, " s"),
            Target("stream p99", percentile(list(streamed.values()), 0.99), 1.0, True, " s"),
        ],
    )


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
