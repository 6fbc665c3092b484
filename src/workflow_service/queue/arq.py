"""arq on Redis: the job id is the run uuid, so enqueueing a run twice is harmless."""

from __future__ import annotations

import asyncio
import uuid

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from workflow_service.queue.base import QueueUnavailable, job_id

JOB_NAME = "execute_run"
CHECK_TIMEOUT_SECONDS = 3.0


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 3
    settings.conn_retries = 1
    return settings


class ArqQueue:
    def __init__(self, pool: ArqRedis) -> None:
        self._pool = pool
        self._owner = uuid.uuid4().hex

    @classmethod
    async def connect(cls, url: str) -> ArqQueue:
        return cls(await create_pool(redis_settings(url)))

    async def enqueue(self, pipeline_uuid: str, run_uuid: str, attempt: int) -> None:
        try:
            await self._pool.enqueue_job(
                JOB_NAME, pipeline_uuid, run_uuid, _job_id=job_id(run_uuid, attempt)
            )
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"cannot enqueue run {run_uuid}: {exc}") from exc

    async def abort(self, run_uuid: str, attempt: int) -> None:
        # What arq's Job.abort() does, without waiting for the job to end; the job of a
        # RUNNING run was enqueued one attempt earlier than a waiting one.
        now = timestamp_ms()
        ids = {job_id(run_uuid, attempt): now, job_id(run_uuid, max(attempt - 1, 0)): now}
        try:
            await self._pool.zadd(abort_jobs_ss, ids)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"cannot abort run {run_uuid}: {exc}") from exc

    async def depth(self) -> int:
        try:
            return int(await self._pool.zcard(self._pool.default_queue_name))
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"cannot read the queue depth: {exc}") from exc

    async def check(self) -> None:
        try:
            await asyncio.wait_for(self._pool.ping(), CHECK_TIMEOUT_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            raise QueueUnavailable(f"Redis does not answer: {exc}") from exc

    async def hold_lock(self, name: str, seconds: float) -> bool:
        key, milliseconds = f"workflow-service:{name}", int(seconds * 1000)
        try:
            if await self._pool.set(key, self._owner, nx=True, px=milliseconds):
                return True
            if await self._pool.get(key) == self._owner.encode():
                await self._pool.pexpire(key, milliseconds)
                return True
        except (RedisError, OSError):
            pass
        return False

    async def close(self) -> None:
        await self._pool.aclose()
