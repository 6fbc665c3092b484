"""The run state machine, as small policy functions (no I/O).

```
QUEUED ──> NOT_STARTED ──> RUNNING ──> COMPLETED | FAILED | CANCELLED
  └────────────┴──> CANCELLED ▲            │
                   NOT_STARTED ◄───────────┘ (handed back: worker stopped or lost)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "QUEUED"
    """A workflow's run waiting for its upstream runs (and, briefly, every new run)."""
    NOT_STARTED = "NOT_STARTED"
    """Enqueued, waiting for a worker."""
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"

    @property
    def code(self) -> int:
        """The original's numeric codes, 1 to 6 in declaration order."""
        return list(RunState).index(self) + 1

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({RunState.FAILED, RunState.COMPLETED, RunState.CANCELLED})

ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.NOT_STARTED, RunState.CANCELLED}),
    RunState.NOT_STARTED: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.RUNNING: frozenset(
        {RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED, RunState.NOT_STARTED}
    ),
    RunState.FAILED: frozenset(),
    RunState.COMPLETED: frozenset(),
    RunState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Decision:
    """What to do with a requested state: apply it, ignore it (already there), or refuse."""

    apply: bool
    refusal: str | None = None


def decide_transition(current: RunState, requested: RunState) -> Decision:
    """Same state again is a no-op (workers retry); anything off the graph is refused."""
    if requested is current:
        return Decision(apply=False)
    if requested in ALLOWED[current]:
        return Decision(apply=True)
    return Decision(
        apply=False,
        refusal=f"Invalid state transition: {current.value} -> {requested.value} "
        f"(the run is {current.value})",
    )


def claim_refusal(current: RunState, current_claim: str | None, claim: str | None) -> str | None:
    """A worker names its claim on a run; while the run is RUNNING under another claim
    (another worker took it over, or the same job was delivered twice), it is refused."""
    if current is RunState.RUNNING and claim and current_claim and claim != current_claim:
        return "the run is being executed by another worker (its claim differs)"
    return None


def can_cancel(current: RunState) -> bool:
    return not current.is_final
