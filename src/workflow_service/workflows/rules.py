"""Workflow rules as plain functions (no I/O): the DAG of workflow pipelines, how
artifacts are named when they flow downstream, and a workflow run's state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from workflow_service.runs.states import FINAL_STATES, RunState

Edge = tuple[str, str]
"""(source, destination): the source's artifacts flow to the destination."""


def _reachable(start: str, edges: Iterable[Edge]) -> set[str]:
    following: dict[str, list[str]] = {}
    for source, destination in edges:
        following.setdefault(source, []).append(destination)
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        for nxt in following.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def cycle_maker(
    node: str, sources: Sequence[str], destinations: Sequence[str], others: Iterable[Edge]
) -> str | None:
    """The first source or destination of ``node`` whose edge would close a cycle, given
    the workflow's other edges (those not touching ``node``); None when all is acyclic.

    A self-loop names ``node`` itself.
    """
    edges = {edge for edge in others if node not in edge}
    for source in sources:
        if source == node or source in _reachable(node, edges):
            return source
        edges.add((source, node))
    for destination in destinations:
        if destination == node or node in _reachable(destination, edges):
            return destination
        edges.add((node, destination))
    return None


def sources_of(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """Each node's direct upstream nodes (in edge order), for every node given."""
    found: dict[int, list[int]] = {node: [] for node in nodes}
    for source, destination in edges:
        if destination in found and source in found:
            found[destination].append(source)
    return found


def input_names(offered: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Names of the inputs a run gets from its upstream runs' artifacts.

    ``offered`` is (key, artifact name) in upstream order. The first artifact of a name
    keeps it; a later one of the same name becomes ``stem-2.ext``, ``stem-3.ext``…
    (skipping names already taken), so every artifact arrives and the rule is stable.
    """
    taken: set[str] = set()
    named: list[tuple[str, str]] = []
    for key, name in offered:
        chosen = name
        if chosen in taken:
            folder, _, base = name.rpartition("/")
            stem, dot, suffix = base.rpartition(".") if "." in base[1:] else (base, "", "")
            number = 2
            while chosen in taken:
                renamed = f"{stem}-{number}{dot}{suffix}"
                chosen = f"{folder}/{renamed}" if folder else renamed
                number += 1
        taken.add(chosen)
        named.append((key, chosen))
    return named


def is_ready(run_sources: Sequence[int], states: Mapping[int, RunState]) -> bool:
    """A run starts once every one of its upstream runs has COMPLETED."""
    return all(states.get(source) is RunState.COMPLETED for source in run_sources)


def must_stop(states: Iterable[RunState]) -> bool:
    """One run FAILED or CANCELLED: every unfinished run of the workflow run is cancelled."""
    return any(state in {RunState.FAILED, RunState.CANCELLED} for state in states)


def workflow_state(states: Sequence[RunState]) -> RunState:
    """The workflow run's state from its runs' states.

    Until all runs have ended: RUNNING once any run is running or done, else NOT_STARTED.
    Then: FAILED if one failed, else CANCELLED if one was cancelled, else COMPLETED.
    """
    if all(state in FINAL_STATES for state in states):
        for outcome in (RunState.FAILED, RunState.CANCELLED):
            if outcome in states:
                return outcome
        return RunState.COMPLETED
    if any(state is RunState.RUNNING or state in FINAL_STATES for state in states):
        return RunState.RUNNING
    return RunState.NOT_STARTED


WORKFLOW_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.NOT_STARTED: frozenset({RunState.RUNNING, *FINAL_STATES}),
    RunState.RUNNING: FINAL_STATES,
}


def workflow_can_move(current: RunState, derived: RunState) -> bool:
    return derived in WORKFLOW_TRANSITIONS.get(current, frozenset())
