"""Console text kept per stream, capped: the head and the tail survive, the middle goes.

A stream's *size* counts every character the worker ever sent, so an append
names the offset it starts at and a repeated append (a retry) adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

TRUNCATION_MARKER = "\n[... console truncated: the middle of this stream was dropped ...]\n"


@dataclass(frozen=True)
class Stream:
    text: str
    size: int


class OffsetAhead(ValueError):
    """The append starts after the end of what was received: a chunk is missing."""


def _capped(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    half = cap // 2
    return text[:half] + TRUNCATION_MARKER + text[-half:]


def append(stream: Stream, offset: int, data: str, cap: int) -> Stream:
    """Add ``data`` that starts at ``offset`` of the stream; overlap is skipped."""
    if offset > stream.size:
        raise OffsetAhead(f"offset {offset} is past the end of the stream ({stream.size})")
    fresh = data[stream.size - offset :]
    if not fresh:
        return stream
    size = stream.size + len(fresh)
    if stream.size <= cap:
        return Stream(text=_capped(stream.text + fresh, cap), size=size)
    half = cap // 2
    head, tail = stream.text[:half], stream.text[half + len(TRUNCATION_MARKER) :]
    return Stream(text=head + TRUNCATION_MARKER + (tail + fresh)[-half:], size=size)


def replace(data: str, cap: int) -> Stream:
    """The original's whole-console PUT."""
    return Stream(text=_capped(data, cap), size=len(data))


def since(stream: Stream, offset: int, cap: int) -> str:
    """What arrived after ``offset`` (the truncation marker stands in for lost text)."""
    if offset >= stream.size:
        return ""
    if stream.size <= cap:
        return stream.text[offset:]
    tail = stream.text[cap // 2 + len(TRUNCATION_MARKER) :]
    wanted = stream.size - offset
    if wanted <= len(tail):
        return tail[-wanted:]
    return TRUNCATION_MARKER + tail
