"""Keyset pagination shared by every list endpoint.

Lists answer the original's plain JSON array. A client that passes ``limit``
gets at most that many items and, when more follow, the opaque cursor of the
next page in the ``X-Next-Cursor`` header (and a ``Link: <...>; rel="next"``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from workflow_service.errors import BadRequest

MAX_PAGE_SIZE = 1000
NEXT_CURSOR_HEADER = "X-Next-Cursor"
MAX_CURSOR_ID = 2**31 - 1
"""Row ids are INTEGER: a larger cursor was not issued here, and would fail the query."""


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = raw.partition(":")
        if version != "v1" or not value.isascii() or not value.isdigit():
            raise ValueError(raw)
        last_id = int(value)
        if last_id > MAX_CURSOR_ID:
            raise ValueError(raw)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("Invalid cursor", {"cursor": ["not a cursor this API issued"]}) from None


@dataclass(frozen=True)
class Page:
    """What a list query needs: rows after ``after_id``, at most ``limit`` of them."""

    limit: int | None
    after_id: int | None

    def fetch_size(self) -> int | None:
        """One more row than the page, to know whether another page follows."""
        return None if self.limit is None else self.limit + 1

    def finish(self, rows: list[Any], request: Request, response: Response) -> list[Any]:
        """Trim the look-ahead row and announce the next page's cursor."""
        if self.limit is None or len(rows) <= self.limit:
            return rows
        rows = rows[: self.limit]
        cursor = encode_cursor(rows[-1].id)
        response.headers[NEXT_CURSOR_HEADER] = cursor
        next_url = request.url.include_query_params(cursor=cursor, limit=self.limit)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
        return rows


async def page_params(
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_PAGE_SIZE,
            description="Page size. Without it the whole list is returned, as in the original API.",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description=f"Opaque cursor from a previous page's `{NEXT_CURSOR_HEADER}` header.",
        ),
    ] = None,
) -> Page:
    return Page(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[Page, Depends(page_params)]


# The documented 200 answer of every list: the array, and the next page's headers.
PAGED_LIST: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            NEXT_CURSOR_HEADER: {
                "description": "Cursor of the next page, when `limit` was given and more follow.",
                "schema": {"type": "string"},
            },
            "Link": {
                "description": 'URL of the next page, `rel="next"`.',
                "schema": {"type": "string"},
            },
        }
    }
}
