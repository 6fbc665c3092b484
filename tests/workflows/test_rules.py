"""Workflow rules as plain functions: cycles, readiness, naming, derived state."""

from __future__ import annotations

import pytest

from workflow_service.runs.states import RunState
from workflow_service.workflows import rules

S = RunState


def test_acyclic_edges_pass() -> None:
    assert rules.cycle_maker("d", ["b", "c"], [], [("a", "b"), ("a", "c")]) is None
    assert rules.cycle_maker("a", [], ["b", "c"], [("b", "d"), ("c", "d")]) is None


def test_self_loop_names_the_node() -> None:
    assert rules.cycle_maker("a", ["a"], [], []) == "a"
    assert rules.cycle_maker("a", [], ["a"], []) == "a"


def test_cycle_names_the_offending_neighbour() -> None:
    chain = [("a", "b"), ("b", "c")]
    assert rules.cycle_maker("x", ["c"], ["a"], chain) == "a"
    assert rules.cycle_maker("c", ["b"], ["a"], chain) == "a"
    assert rules.cycle_maker("a", ["c"], ["b"], chain) == "b"
    assert rules.cycle_maker("y", ["c", "a"], [], chain) is None
    # a node's old edges are replaced, not kept: reversing them is allowed
    assert rules.cycle_maker("b", ["c"], ["a"], chain) is None


def test_sources_and_readiness() -> None:
    sources = rules.sources_of([1, 2, 3, 4], [(1, 2), (1, 3), (2, 4), (3, 4)])
    assert sources == {1: [], 2: [1], 3: [1], 4: [2, 3]}
    states = {1: S.COMPLETED, 2: S.COMPLETED, 3: S.RUNNING, 4: S.QUEUED}
    assert rules.is_ready(sources[2], states)
    assert not rules.is_ready(sources[4], states)
    assert rules.is_ready(sources[4], states | {3: S.COMPLETED})
    assert rules.is_ready(sources[1], states)


def test_input_names_keep_every_artifact() -> None:
    named = rules.input_names(
        [
            ("k1", "out.csv"),
            ("k2", "b.csv"),
            ("k3", "out.csv"),
            ("k4", "out.csv"),
            ("k5", "out-2.csv"),
            ("k6", "README"),
        ]
    )
    assert named == [
        ("k1", "out.csv"),
        ("k2", "b.csv"),
        ("k3", "out-2.csv"),
        ("k4", "out-3.csv"),
        ("k5", "out-2-2.csv"),
        ("k6", "README"),
    ]
    assert rules.input_names([("a", "p/x.csv"), ("b", "p/x.csv")]) == [
        ("a", "p/x.csv"),
        ("b", "p/x-2.csv"),
    ]
    assert rules.input_names([("a", ".env"), ("b", ".env")]) == [("a", ".env"), ("b", ".env-2")]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.NOT_STARTED, S.QUEUED], S.NOT_STARTED),
        ([S.RUNNING, S.QUEUED], S.RUNNING),
        ([S.COMPLETED, S.QUEUED], S.RUNNING),
        ([S.COMPLETED, S.COMPLETED], S.COMPLETED),
        ([S.COMPLETED, S.FAILED, S.CANCELLED], S.FAILED),
        ([S.COMPLETED, S.CANCELLED], S.CANCELLED),
        ([S.FAILED, S.RUNNING], S.RUNNING),
    ],
)
def test_workflow_state(states: list[RunState], expected: RunState) -> None:
    assert rules.workflow_state(states) is expected


def test_workflow_state_moves_forward_only() -> None:
    assert rules.workflow_can_move(S.NOT_STARTED, S.RUNNING)
    assert rules.workflow_can_move(S.NOT_STARTED, S.COMPLETED)
    assert rules.workflow_can_move(S.RUNNING, S.FAILED)
    assert not rules.workflow_can_move(S.RUNNING, S.NOT_STARTED)
    assert not rules.workflow_can_move(S.COMPLETED, S.RUNNING)
    assert rules.must_stop([S.COMPLETED, S.FAILED]) and not rules.must_stop([S.COMPLETED])
