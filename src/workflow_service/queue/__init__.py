"""Handing runs to workers: arq on Redis, or in-process execution (embedded default).

Both call the same job function, ``workflow_service.worker.jobs.execute_run``,
and both are idempotent per run: the job id is the run uuid.
"""

from workflow_service.queue.base import JobFunction, QueueUnavailable, RunQueue, job_id

__all__ = ["JobFunction", "QueueUnavailable", "RunQueue", "job_id"]
