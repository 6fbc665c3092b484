"""Request bodies that are not plain JSON models: multipart forms and raw streams.

Starlette spools each uploaded file to a temporary file past 1 MiB, so memory
stays bounded whatever the upload's size; the files are then streamed to
storage in chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from workflow_service.errors import BadRequest
from workflow_service.schemas import FileName, RelativeFileName

CHUNK_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 1024 * 1024

Model = TypeVar("Model", bound=BaseModel)
_file_name: TypeAdapter[str] = TypeAdapter(FileName)
_relative_file_name: TypeAdapter[str] = TypeAdapter(RelativeFileName)


@dataclass(frozen=True)
class Upload:
    """A file sent with a request, readable in chunks."""

    name: str
    chunks: AsyncIterator[bytes]
    content_type: str


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _validation_error(exc: ValidationError, prefix: tuple[str, ...]) -> RequestValidationError:
    errors = [{**error, "loc": ("body", *prefix, *error["loc"])} for error in exc.errors()]
    return RequestValidationError(errors)


def parse_json(raw: bytes, model: type[Model]) -> Model:
    """Validate a JSON body (empty means ``{}``) into ``model``; failures are the usual 400."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _validation_error(exc, ()) from None


def parse_data(data: dict[str, Any], model: type[Model]) -> Model:
    """Validate already-decoded fields (a form's) into ``model``; failures are the usual 400."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, ()) from None


async def read_form(request: Request, *, max_files: int, fields: set[str]) -> FormData:
    """Parse a multipart body; only ``files`` parts and the named text ``fields`` are allowed."""
    try:
        form = await request.form(
            max_files=max_files, max_fields=len(fields) + 1, max_part_size=MAX_FIELD_BYTES
        )
    except MultiPartException as exc:
        raise BadRequest("Invalid multipart body", {"body": [str(exc)]}) from None
    unknown = sorted({key for key in form if key != "files" and key not in fields})
    if unknown:
        raise BadRequest("Unknown form fields", {name: ["unknown field"] for name in unknown})
    for key in fields:
        if any(not isinstance(value, str) for value in form.getlist(key)):
            raise BadRequest("Invalid form field", {key: ["must be a text field, not a file"]})
        if len(form.getlist(key)) > 1:
            raise BadRequest("Invalid form field", {key: ["given more than once"]})
    return form


def form_files(form: FormData) -> list[UploadFile]:
    files = form.getlist("files")
    if any(not isinstance(item, UploadFile) for item in files):
        raise BadRequest("Invalid form field", {"files": ["each `files` part must be a file"]})
    return [item for item in files if isinstance(item, UploadFile)]


def checked_file_name(name: str | None, field: str = "files", *, relative: bool = False) -> str:
    """A client-given file name, refused (400) unless it is a plain file name (or, with
    ``relative``, a relative path of plain file names)."""
    adapter = _relative_file_name if relative else _file_name
    try:
        return adapter.validate_python(name or "")
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise BadRequest("Invalid file name", {field: [f"{name!r}: {message}"]}) from None


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


def upload_of(file: UploadFile) -> Upload:
    """An uploaded part as an Upload, its name checked (400 unless a plain file name)."""
    return Upload(
        name=checked_file_name(file.filename),
        chunks=_chunks(file),
        content_type=file.content_type or "application/octet-stream",
    )


def form_json(form: FormData, field: str, default: Any) -> Any:
    """A JSON-valued text field of a form (for instance ``inputs`` or ``defines``)."""
    value = form.get(field)
    if value is None:
        return default
    try:
        return json.loads(str(value))
    except ValueError:
        raise BadRequest("Invalid form field", {field: ["must be JSON"]}) from None
