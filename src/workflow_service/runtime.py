"""What the API process runs beside its routes: storage, queue, callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from workflow_service.queue import RunQueue
from workflow_service.runs.callbacks import CallbackDispatcher
from workflow_service.settings import Settings
from workflow_service.storage import Storage


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    queue: RunQueue
    callbacks: CallbackDispatcher


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
