"""The run state machine and the console rules, as plain functions."""

from __future__ import annotations

import pytest

from workflow_service.runs import console
from workflow_service.runs.states import ALLOWED, RunState, claim_refusal, decide_transition

S = RunState


def test_codes_are_the_originals() -> None:
    assert [state.code for state in RunState] == [1, 2, 3, 4, 5, 6]
    assert S.QUEUED.code == 1 and S.CANCELLED.code == 6


@pytest.mark.parametrize(
    ("current", "requested"),
    [
        (S.QUEUED, S.NOT_STARTED),
        (S.QUEUED, S.CANCELLED),
        (S.NOT_STARTED, S.RUNNING),
        (S.NOT_STARTED, S.CANCELLED),
        (S.RUNNING, S.COMPLETED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.CANCELLED),
        (S.RUNNING, S.NOT_STARTED),
    ],
)
def test_allowed_transitions_apply(current: RunState, requested: RunState) -> None:
    assert decide_transition(current, requested).apply


@pytest.mark.parametrize("state", list(RunState))
def test_same_state_is_a_no_op(state: RunState) -> None:
    decision = decide_transition(state, state)
    assert not decision.apply and decision.refusal is None


def test_everything_else_is_refused_naming_the_current_state() -> None:
    refused = 0
    for current in RunState:
        for requested in RunState:
            if requested is current or requested in ALLOWED[current]:
                continue
            decision = decide_transition(current, requested)
            assert not decision.apply
            assert decision.refusal is not None and current.value in decision.refusal
            refused += 1
    assert refused == 36 - 6 - 8
    for final in (S.COMPLETED, S.FAILED, S.CANCELLED):
        assert final.is_final and not ALLOWED[final]


def test_claims_keep_one_execution_per_run() -> None:
    assert claim_refusal(S.RUNNING, "a" * 32, "b" * 32) is not None
    assert claim_refusal(S.RUNNING, "a" * 32, "a" * 32) is None
    assert claim_refusal(S.RUNNING, "a" * 32, None) is None  # the original's workers send none
    assert claim_refusal(S.NOT_STARTED, "a" * 32, "b" * 32) is None  # a new attempt


def test_append_is_idempotent_by_offset() -> None:
    stream = console.Stream("", 0)
    stream = console.append(stream, 0, "hello ", cap=100)
    again = console.append(stream, 0, "hello ", cap=100)
    assert again == stream
    overlapping = console.append(stream, 3, "lo world", cap=100)
    assert overlapping == console.Stream("hello world", 11)
    with pytest.raises(console.OffsetAhead):
        console.append(overlapping, 20, "gap", cap=100)


def test_cap_keeps_head_and_tail() -> None:
    cap = 20
    stream = console.Stream("", 0)
    text = "".join(f"{i:03d}," for i in range(50))
    for start in range(0, len(text), 7):
        stream = console.append(stream, start, text[start : start + 7], cap)
    assert stream.size == len(text)
    assert stream.text.startswith(text[:10])
    assert stream.text.endswith(text[-10:])
    assert console.TRUNCATION_MARKER in stream.text
    assert len(stream.text) == cap + len(console.TRUNCATION_MARKER)


def test_since_returns_only_new_text() -> None:
    stream = console.append(console.Stream("", 0), 0, "abcdef", cap=100)
    assert console.since(stream, 0, 100) == "abcdef"
    assert console.since(stream, 4, 100) == "ef"
    assert console.since(stream, 6, 100) == ""
    long = console.replace("x" * 10 + "y" * 30, cap=20)
    assert console.since(long, 35, 20) == "y" * 5
    assert console.since(long, 0, 20).startswith(console.TRUNCATION_MARKER)
