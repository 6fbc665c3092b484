"""Logs: lines for people (LOG_FORMAT=text) or one JSON object a line (json), each with
the request id and the run it is about.

Every module logs through the standard library (``logging.getLogger``); structlog's
ProcessorFormatter renders those records, uvicorn's and arq's included, and adds
what structlog's context variables hold: ``request_id`` (bound by :class:`RequestContext`
for a request), ``run_uuid`` and ``pipeline_uuid`` (bound by :func:`run_context` while a
worker executes a run). Loggers of structlog's own API render the same way.
"""

from __future__ import annotations

import logging
import logging.config
import re
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_service.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What an X-Request-ID must look like to be kept; anything else is replaced."""
LOGGED_PATH_PARAMS = ("pipeline_uuid", "run_uuid", "workflow_uuid", "workflow_run_uuid")
QUIET_LOGGERS = {"httpx": "WARNING"}  # one line per worker → API call is noise at info

EventDict = MutableMapping[str, Any]


def _drop_noise(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("positional_args", None)
    event_dict.pop("color_message", None)  # uvicorn's message again, with terminal colours
    return event_dict


def _access_fields(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access line as fields too: client, method, path, http_version, status."""
    args = event_dict.get("positional_args")
    record = event_dict.get("_record")
    is_access = record is not None and record.name == "uvicorn.access"
    if is_access and isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        event_dict.update(
            client=client, method=method, path=path, http_version=version, status=status
        )
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(log_format: str = "text") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler (named in :func:`logging_config` by import path, so
    the configuration stays plain data that uvicorn can hand to its worker processes)."""
    json = log_format == "json"
    finishing: list[Any] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            *([_access_fields] if json else []),  # a text access line says it all already
            _drop_noise,
        ],
        pass_foreign_args=True,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finishing],
    )


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: everything to stderr, through structlog.

    ``serve`` also gives it to uvicorn (``log_config``), which applies it in each of its
    processes; uvicorn's loggers then propagate to the root handler instead of their own.
    """
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": "workflow_service.logs.formatter",
                "log_format": settings.log_format,
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            **{
                name: {"level": level, "handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq")
            },
            **{name: {"level": value} for name, value in QUIET_LOGGERS.items()},
        },
    }


def configure(settings: Settings) -> None:
    """Configure logging once for the process (``serve``, ``worker``)."""
    logging.config.dictConfig(logging_config(settings))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def run_context(pipeline_uuid: str, run_uuid: str) -> Iterator[None]:
    """Every line logged inside (tasks started inside included) names the run."""
    with structlog.contextvars.bound_contextvars(pipeline_uuid=pipeline_uuid, run_uuid=run_uuid):
        yield


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a sane one, else a new id."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if SAFE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContext:
    """Pure ASGI middleware: a request id for every request (the client's sane
    ``X-Request-ID`` or a new one), bound to the request's log lines and answered in the
    ``X-Request-ID`` response header. The access line also gets the route's run and
    pipeline uuids."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])

        async def send_with_id(message: Message) -> None:
            if message["type"] != "http.response.start":
                await send(message)
                return
            message["headers"] = [
                *message.get("headers", []),
                (REQUEST_ID_HEADER, request_id.encode()),
            ]
            params = scope.get("path_params") or {}
            named = {
                name: value
                for name in LOGGED_PATH_PARAMS
                if isinstance(value := params.get(name), str) and SAFE_ID.fullmatch(value)
            }
            # uvicorn writes its access line while it sends the response start.
            with structlog.contextvars.bound_contextvars(**named):
                await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
