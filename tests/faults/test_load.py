"""A bounded load test: 50 concurrent clients creating runs of the tiny model and
polling them, on PostgreSQL + Redis + 2 worker processes.

It runs LOAD_SECONDS (15 by default, so `make test` stays short; 60 for the full
exercise) and then checks: no 5xx at all, every created run reached a final state,
no connection-pool exhaustion (that would show as 503s), and the workers' memory did
not grow out of bounds. Start and end RSS are printed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.faults.conftest import Faulty
from tests.harness import FINAL, MODELS

CLIENTS = 50
SECONDS = float(os.environ.get("LOAD_SECONDS", "15"))
RSS_GROWTH_LIMIT_KB = 100 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def test_fifty_clients_create_and_poll_runs(faulty: Faulty) -> None:
    async with faulty(
        workers=2,
        heartbeat_timeout_seconds=60.0,
        database_pool_size=10,
    ) as service:
        pipeline = await service.pipeline(kind="gridlabd", name="tiny")
        await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
        runs_url = f"/v1/pipelines/{pipeline['uuid']}/runs"
        statuses: Counter[int] = Counter()
        created: list[str] = []
        await asyncio.sleep(1)  # workers connected
        start_rss = {process.pid: rss_kb(process.pid) for process in service.processes}
        start_rss[os.getpid()] = rss_kb(os.getpid())
        deadline = time.monotonic() + SECONDS

        async def client() -> None:
            async with httpx.AsyncClient(
                base_url=service.url,
                headers={"Workflow-API-Key": service.keys.client},
                timeout=60,
            ) as http:
                while time.monotonic() < deadline:
                    response = await http.post(runs_url, json={})
                    statuses[response.status_code] += 1
                    if response.status_code != 200:
                        continue
                    run = response.json()["uuid"]
                    created.append(run)
                    while time.monotonic() < deadline:
                        polled = await http.get(f"{runs_url}/{run}")
                        statuses[polled.status_code] += 1
                        if polled.status_code == 200 and polled.json()["state"] in FINAL:
                            break
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        settle = time.monotonic() + 180
        while True:
            listed = (await service.client.get(runs_url)).json()
            unfinished = [run for run in listed if run["state"] not in FINAL]
            if not unfinished:
                break
            assert time.monotonic() < settle, f"{len(unfinished)} runs never finished"
            await asyncio.sleep(1)
        end_rss = {pid: rss_kb(pid) for pid in start_rss}
        states = Counter(run["state"] for run in listed)
        sys.stderr.write(
            f"\nload: {CLIENTS} clients, {SECONDS:g} s: {len(created)} runs created, "
            f"states {dict(states)}, responses {dict(statuses)}\n"
        )
        for pid, before in start_rss.items():
            sys.stderr.write(f"load: pid {pid} RSS {before} KiB -> {end_rss[pid]} KiB\n")

    assert not [code for code in statuses if code >= 500], statuses
    assert created and len(listed) == len(created)
    assert states == Counter({"COMPLETED": len(created)}), states
    for pid, before in start_rss.items():
        if pid != os.getpid():
            assert end_rss[pid] - before < RSS_GROWTH_LIMIT_KB, (pid, before, end_rss[pid])
