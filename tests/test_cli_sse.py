"""The command line's SSE parser and console line assembly (no server needed)."""

from __future__ import annotations

import io

from workflow_service.client import ApiError, Event, field_errors, parse_sse
from workflow_service.submit import PlainDisplay


def test_parse_sse_joins_data_lines_keeps_ids_and_skips_pings() -> None:
    lines = [
        ": ping - 2026-11-28 00:00:00",
        "",
        "event: std_err",
        "id: 0:12",
        "data: WARNING one",
        "data: ",
        "",
        "event: progress",
        "id: 0:12",
        "data: 40",
        "",
        "data: no event name",
        "",
        "event: end",
        "data: COMPLETED",
    ]
    assert list(parse_sse(lines)) == [
        Event("std_err", "WARNING one\n", "0:12"),
        Event("progress", "40", "0:12"),
        Event("message", "no event name", "0:12"),
        Event("end", "COMPLETED", "0:12"),
    ]


def test_console_text_is_shown_a_whole_line_at_a_time_per_stream() -> None:
    out = io.StringIO()
    with PlainDisplay(None, out) as display:
        display.text("std_err", "WARN")
        display.text("std_out", "hello\nwor")
        display.text("std_err", "ING x\n")
        display.text("std_out", "ld")
    assert out.getvalue() == "hello\nWARNING x\nworld\n"


def test_api_errors_name_each_field() -> None:
    errors = {"name": ["must not be blank"], "inputs": {"1": {"url": ["bad scheme"]}}}
    assert list(field_errors(errors)) == [
        ("name", "must not be blank"),
        ("inputs.1.url", "bad scheme"),
    ]
    message = str(ApiError("POST", "/v1/pipelines", 400, "Invalid request", errors))
    assert message.splitlines() == [
        "POST /v1/pipelines: 400 Invalid request",
        "  name: must not be blank",
        "  inputs.1.url: bad scheme",
    ]
