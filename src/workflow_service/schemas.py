"""Types shared by every domain's request and response models."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field, StringConstraints

UUID_PATTERN = r"^[0-9a-f]{32}$"
_UUID = re.compile(UUID_PATTERN)

HexUuid = Annotated[
    str,
    StringConstraints(pattern=UUID_PATTERN),
    Field(
        description="32 lowercase hexadecimal characters",
        examples=["0f8e3a1c2b4d4e6f8a9b0c1d2e3f4a5b"],
    ),
]

UuidPath = Annotated[
    str,
    Path(
        description=(
            "32 lowercase hexadecimal characters. Any other value names no resource: 404."
        ),
        examples=["0f8e3a1c2b4d4e6f8a9b0c1d2e3f4a5b"],
    ),
]


def is_hex_uuid(value: str) -> bool:
    """Whether ``value`` can name a resource; checked before any query sees it."""
    return _UUID.fullmatch(value) is not None


def _has_lone_surrogate(value: str) -> bool:
    """JSON's ``"\\ud800"`` decodes to a str that no database (nor UTF-8) can store."""
    return any("\ud800" <= char <= "\udfff" for char in value)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if _has_lone_surrogate(value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    return value


def _plain_file_name(value: str) -> str:
    if "/" in value or "\\" in value:
        raise ValueError("must be a plain file name, without / or \\")
    if ".." in value:
        raise ValueError("must not contain '..'")
    # Cc: C0, DEL and C1 (U+0080-U+009F), which storage refuses in a key.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain NUL or control characters")
    if _has_lone_surrogate(value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    if value in {"", "."}:
        raise ValueError("must be a file name")
    if len(value.encode("utf-8", "surrogatepass")) > 255:
        raise ValueError("must be at most 255 bytes")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""Any string kept in the database (PostgreSQL cannot store NUL, nor UTF-8 a lone surrogate)."""

FileName = Annotated[
    str,
    AfterValidator(_plain_file_name),
    Field(
        description=(
            "A plain file name: no `/`, `\\`, `..`, NUL or control characters, at most 255 bytes."
        ),
        examples=["ieee13.glm"],
    ),
]
"""A name that becomes a file in a run's working directory, never a path elsewhere."""


def _relative_file_path(value: str) -> str:
    if value.startswith("/"):
        raise ValueError("must be a relative path")
    for part in value.split("/"):
        _plain_file_name(part)
    if len(value.encode("utf-8", "surrogatepass")) > 1024:
        raise ValueError("must be at most 1024 bytes")
    return value


RelativeFileName = Annotated[
    str,
    AfterValidator(_relative_file_path),
    Field(
        description=(
            "A file name, or a relative path of plain file names joined by `/` "
            "(no `..`, `\\`, NUL or control characters)."
        ),
        examples=["ieee13_v675.csv"],
    ),
]
"""An artifact's name: what the run produced, relative to its output folder."""


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name = Annotated[Text, StringConstraints(max_length=50), AfterValidator(not_blank)]
"""A pipeline's or workflow's name: 1 to 50 characters, not only blanks."""

Description = Annotated[Text, StringConstraints(max_length=300)]

MAX_SEARCH_UUIDS = 1000

UuidSearch = Annotated[
    list[HexUuid],
    Field(max_length=MAX_SEARCH_UUIDS, description=f"At most {MAX_SEARCH_UUIDS} uuids."),
]
