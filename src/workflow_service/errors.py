"""The API's error shape, ``{"message": ..., "errors": {...}}``, for every failure.

Validation errors answer 400 (as the original did), not FastAPI's 422; no
request, however malformed, reaches a bare 500 page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

ErrorDetails = dict[str, Any]


class ErrorResponse(BaseModel):
    """Every error answer of the API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "Invalid request",
                    "errors": {"uuids": {"0": ["String should match pattern '^[0-9a-f]{32}$'"]}},
                }
            ]
        }
    )

    message: str = Field(description="What went wrong, in one sentence.")
    errors: ErrorDetails = Field(
        default_factory=dict,
        description="Per-field messages: nested by field path, each leaf a list of messages.",
    )


class ApiError(Exception):
    """An expected failure that becomes an error response."""

    status_code = 400

    def __init__(self, message: str, errors: ErrorDetails | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class BadRequest(ApiError):
    status_code = 400


class NotFound(ApiError):
    status_code = 404


def error_body(message: str, errors: ErrorDetails | None = None) -> dict[str, Any]:
    return ErrorResponse(message=message, errors=errors or {}).model_dump()


def nest_errors(items: Sequence[tuple[Sequence[str | int], str]]) -> ErrorDetails:
    """Turn (location, message) pairs into the nested shape of the original API."""
    nested: ErrorDetails = {}
    for location, message in items:
        node = nested
        path = [str(part) for part in location] or ["_schema"]
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {"_schema": child}
            node = child
        leaf = node.setdefault(path[-1], [])
        if isinstance(leaf, dict):
            leaf = leaf.setdefault("_schema", [])
        leaf.append(message)
    return nested


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part.startswith("<") and part.endswith(">")


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items: list[tuple[Sequence[str | int], str]] = []
    expects_body = False
    for error in exc.errors():
        location = list(error.get("loc", ()))
        if location and location[0] == "body":
            expects_body = True
        if location and location[0] in {"body", "query", "path", "header"}:
            location = location[1:]
        # "<member>" parts name the member of a tagged union, not a field: drop them.
        location = [part for part in location if not _is_union_tag(part)]
        if error.get("type") == "json_invalid":
            location = []
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        items.append((location, message))
    content_type = request.headers.get("content-type")
    is_multipart = (content_type or "").lower().startswith("multipart/form-data")
    if expects_body and not _is_json(content_type) and not is_multipart:
        return JSONResponse(
            error_body(
                "Content-Type must be application/json",
                {"content_type": [f"got {content_type or 'none'}"]},
            ),
            status_code=400,
        )
    return JSONResponse(error_body("Invalid request", nest_errors(items)), status_code=400)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.message, exc.errors), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    return JSONResponse(error_body(message), status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body("Database unavailable; try again shortly"),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("Internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    unavailable_errors = (
        OperationalError,
        InterfaceError,
        SQLAlchemyTimeoutError,
        ConnectionError,
        TimeoutError,
    )
    for unavailable in unavailable_errors:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    descriptions = {
        400: "Invalid request: malformed JSON, wrong Content-Type, or a field failed validation",
        401: "Missing or unknown API key",
        403: "The API key lacks the permission this operation needs",
        404: "No such resource",
        413: "Request body larger than MAX_CONTENT_LENGTH",
        503: "A backing service (database, queue, storage) is unavailable",
    }
    return {
        code: {"model": ErrorResponse, "description": descriptions[code]} for code in status_codes
    }
