"""Faults made to happen for real: workers killed and stopped, Redis down and flushed,
the API restarted, the database and object storage cut off, a run's output too big.
Each test checks that nothing was lost and that no run is left stuck."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from arq import create_pool

from tests.faults.conftest import Faulty, RedisServer, TcpProxy, distributed
from tests.harness import (
    MODELS,
    Service,
    engine_processes,
    start_worker,
)
from workflow_service.queue.arq import JOB_NAME, redis_settings

LONG = [MODELS / "long" / "long.glm", MODELS / "long" / "weather.csv"]


async def long_pipeline(service: Service, stop: str = "2020-07-01 08:00:00 PDT") -> str:
    pipeline = await service.pipeline(
        kind="gridlabd", name="long", arguments=["-D", f"STOPTIME={stop}"]
    )
    await service.add_files(pipeline["uuid"], LONG)
    return str(pipeline["uuid"])


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def worker_running(service: Service, run_uuid: str) -> int:
    """The pid of the worker process whose engine runs ``run_uuid``."""
    workers = {process.pid for process in service.processes}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in engine_processes(run_uuid):
            with contextlib.suppress(OSError):
                while pid > 1:
                    if pid in workers:
                        return pid
                    pid = parent_of(pid)
        await asyncio.sleep(0.1)
    raise AssertionError("no worker runs the engine of this run")


async def test_killed_worker_run_is_retried_and_completes(faulty: Faulty) -> None:
    async with faulty() as service:
        pipeline = await long_pipeline(service)
        run = await service.start(pipeline)
        victim = await worker_running(service, run["uuid"])
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while engine_processes(run["uuid"]):
            # The engine dies with its worker (PR_SET_PDEATHSIG); a retry cannot start
            # before the heartbeat timeout (3 s) has passed.
            assert time.monotonic() - killed < 2.5, "the engine outlived its worker"
            await asyncio.sleep(0.1)
        done = await service.wait(pipeline, run["uuid"], timeout=120)
        assert done["state"] == "COMPLETED", done
        assert done["attempt"] == 2
        states = [entry["state"] for entry in done["states"]]
        assert states == ["QUEUED", "NOT_STARTED", "RUNNING", "NOT_STARTED", "RUNNING", "COMPLETED"]
        names = [artifact["name"] for artifact in done["artifacts"]]
        assert sorted(names) == ["long_substation.csv", "long_temp.csv"]


async def test_worker_lost_after_the_last_attempt_fails_the_run(faulty: Faulty) -> None:
    async with faulty(
        workers=1,
        run_max_attempts=1,
    ) as service:
        pipeline = await long_pipeline(service)
        run = await service.start(pipeline)
        victim = await worker_running(service, run["uuid"])
        os.kill(victim, signal.SIGKILL)
        done = await service.wait(pipeline, run["uuid"], timeout=60)
        assert done["state"] == "FAILED"
        assert done["failure_reason"].startswith("worker lost")


async def test_stopped_worker_hands_the_run_back(faulty: Faulty) -> None:
    """No grace period: the run is handed back at once and re-run elsewhere."""
    async with faulty(worker_shutdown_grace_seconds=0) as service:
        pipeline = await long_pipeline(service)
        run = await service.start(pipeline)
        victim = await worker_running(service, run["uuid"])
        process = next(p for p in service.processes if p.pid == victim)
        process.send_signal(signal.SIGTERM)
        # In a thread: the API it reports to on its way out runs on this event loop.
        assert await asyncio.to_thread(process.wait, 20) == 0
        done = await service.wait(pipeline, run["uuid"], timeout=120)
        assert done["state"] == "COMPLETED", done
        states = [entry["state"] for entry in done["states"]]
        assert states.count("RUNNING") == 2 and "NOT_STARTED" in states[3:]
        names = [artifact["name"] for artifact in done["artifacts"]]
        assert sorted(names) == ["long_substation.csv", "long_temp.csv"]  # no duplicates


async def test_stopped_worker_finishes_its_run_within_the_grace_period(
    faulty: Faulty,
) -> None:
    async with faulty(worker_shutdown_grace_seconds=60) as service:
        pipeline = await long_pipeline(service, stop="2020-07-01 04:00:00 PDT")
        run = await service.start(pipeline)
        victim = await worker_running(service, run["uuid"])
        process = next(p for p in service.processes if p.pid == victim)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 90) == 0
        done = await service.run(pipeline, run["uuid"])
        assert done["state"] == "COMPLETED", done  # finished before its worker exited
        assert done["attempt"] == 1
        assert [entry["state"] for entry in done["states"]].count("RUNNING") == 1


async def test_redis_down_then_back_runs_every_accepted_run(
    faulty: Faulty, redis_server: RedisServer
) -> None:
    async with faulty() as service:
        pipeline = await service.pipeline(kind="gridlabd", name="tiny")
        await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
        redis_server.stop()
        accepted = [await service.start(pipeline["uuid"]) for _ in range(3)]
        assert all(run["state"] == "NOT_STARTED" for run in accepted)
        redis_server.start()
        for run in accepted:
            done = await service.wait(pipeline["uuid"], run["uuid"], timeout=90)
            assert done["state"] == "COMPLETED", done


async def test_flushed_queue_is_refilled_by_the_reconciler(
    faulty: Faulty, redis_server: RedisServer, tmp_path: Path, s3_endpoint: str
) -> None:
    async with faulty(
        workers=0,
    ) as service:
        pipeline = await service.pipeline(kind="gridlabd", name="tiny")
        await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
        accepted = [await service.start(pipeline["uuid"]) for _ in range(3)]
        pool = await create_pool(redis_settings(redis_server.url))
        await pool.flushdb()
        await pool.aclose()
        service.processes.append(
            start_worker(service.settings, service.url, service.keys.worker, tmp_path, s3_endpoint)
        )
        for run in accepted:
            done = await service.wait(pipeline["uuid"], run["uuid"], timeout=90)
            assert done["state"] == "COMPLETED", done


async def test_same_job_delivered_twice_runs_once(
    faulty: Faulty, redis_server: RedisServer
) -> None:
    async with faulty() as service:
        pipeline = await long_pipeline(service, stop="2020-07-01 02:00:00 PDT")
        run = await service.start(pipeline)
        pool = await create_pool(redis_settings(redis_server.url))
        await pool.enqueue_job(JOB_NAME, pipeline, run["uuid"], _job_id=f"{run['uuid']}-again")
        await pool.aclose()
        done = await service.wait(pipeline, run["uuid"], timeout=90)
        assert done["state"] == "COMPLETED"
        assert done["attempt"] == 1
        assert [entry["state"] for entry in done["states"]].count("RUNNING") == 1


async def test_api_restart_mid_run_is_carried_through(faulty: Faulty) -> None:
    async with faulty(
        heartbeat_timeout_seconds=30.0,
    ) as service:
        pipeline = await long_pipeline(service, stop="2020-07-01 04:00:00 PDT")
        run = await service.start(pipeline)
        await service.wait(pipeline, run["uuid"], {"RUNNING"})
        await service.stop_api()
        await asyncio.sleep(3)
        await service.start_api()
        done = await service.wait(pipeline, run["uuid"], timeout=120)
        assert done["state"] == "COMPLETED", done
        assert done["attempt"] == 1


async def test_database_unreachable_is_503_and_recovers(
    tmp_path: Path,
    postgres_proxy: tuple[TcpProxy, str],
    redis_server: RedisServer,
    s3_endpoint: str,
) -> None:
    proxy, database_url = postgres_proxy
    async with distributed(
        tmp_path,
        database_url=database_url,
        redis_url=redis_server.url,
        s3_endpoint=s3_endpoint,
        workers=0,
    ) as service:
        assert (await service.client.get("/v1/pipelines")).status_code == 200
        await proxy.cut()
        started = time.monotonic()
        response = await service.client.get("/v1/pipelines")
        assert response.status_code == 503
        assert response.json()["message"].startswith("Database unavailable")
        assert time.monotonic() - started < 15
        ready = await service.client.get("/readyz")
        assert ready.status_code == 503 and "database" in ready.json()["errors"]
        await proxy.restore()
        deadline = time.monotonic() + 15
        while (await service.client.get("/v1/pipelines")).status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            await asyncio.sleep(0.2)


async def test_storage_unreachable_during_upload_fails_without_artifacts(
    tmp_path: Path,
    clean_postgres: str,
    redis_server: RedisServer,
    s3_endpoint: str,
    s3_proxy: TcpProxy,
) -> None:
    async with distributed(
        tmp_path,
        database_url=clean_postgres,
        redis_url=redis_server.url,
        s3_endpoint=f"http://127.0.0.1:{s3_proxy.port}",
        workers=1,
        storage_retry_seconds=3.0,
    ) as service:
        pipeline = await long_pipeline(service, stop="2020-07-01 05:00:00 PDT")
        run = await service.start(pipeline)
        await worker_running(service, run["uuid"])  # the engine runs: inputs are in
        await s3_proxy.cut()
        done = await service.wait(pipeline, run["uuid"], timeout=90)
        assert done["state"] == "FAILED"
        assert done["failure_reason"].startswith("artifact upload failed")
        assert done["artifacts"] == []
        await s3_proxy.restore()


async def test_output_over_the_limit_fails_and_cleans_up(faulty: Faulty) -> None:
    async with faulty(
        workers=1,
        run_max_output_bytes=150_000,
    ) as service:
        pipeline = await service.pipeline(
            kind="gridlabd", name="ieee13", arguments=["-D", "INTERVAL=1"]
        )
        await service.add_files(
            pipeline["uuid"],
            [MODELS / "ieee13" / "ieee13.glm", MODELS / "ieee13" / "ieee13_l652.player"],
        )
        run = await service.start(pipeline["uuid"])
        done = await service.wait(pipeline["uuid"], run["uuid"], timeout=90)
        assert done["state"] == "FAILED"
        assert done["failure_reason"].startswith("output limit")
        work = service.settings.run_work_dir
        assert work is not None
        leftovers = list(work.glob(f"run-{run['uuid'][:12]}-*"))
        assert leftovers == []
