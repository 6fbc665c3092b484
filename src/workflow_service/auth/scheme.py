"""How an application authenticates: the header carrying its key, and the
permissions a key holds. Kept free of the web and database stacks so that the
command-line client imports it cheaply."""

from __future__ import annotations

from enum import StrEnum

API_KEY_HEADER = "Workflow-API-Key"


class Permission(StrEnum):
    PIPELINES_CLIENT = "PIPELINES_CLIENT"
    """Everything a client application does: pipelines, runs, workflows."""
    PIPELINES_WORKER = "PIPELINES_WORKER"
    """What a worker reports: run state, console, progress, artifacts."""
    ADMIN = "ADMIN"
    """Managing applications and their keys."""
