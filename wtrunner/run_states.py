"""The states of a recorded run and the only transitions between them (checked in one place).

::

    queued -> resolving -> running -> succeeded | failed | timed_out | cancelled | lost
                        \\-> submitted (back ends not waited for) -> running -> ...

A run may also end from ``queued`` or ``resolving`` (failed, cancelled, lost). Final states
never change again; every other change is refused with :class:`InvalidTransition`.
"""

from __future__ import annotations

import enum

from .errors import WtrunnerError


class RunState(str, enum.Enum):
    """Where a recorded run is."""

    QUEUED = "queued"
    RESOLVING = "resolving"
    RUNNING = "running"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def final(self) -> bool:
        """Whether the run has ended (no transition leaves a final state)."""
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED, RunState.LOST}
)
_ENDINGS = frozenset({RunState.FAILED, RunState.CANCELLED, RunState.LOST})
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RESOLVING, RunState.RUNNING, RunState.SUBMITTED})
    | _ENDINGS,
    RunState.RESOLVING: frozenset({RunState.RUNNING, RunState.SUBMITTED}) | _ENDINGS,
    RunState.RUNNING: FINAL_STATES,
    RunState.SUBMITTED: frozenset({RunState.RUNNING}) | FINAL_STATES,
    **{state: frozenset() for state in FINAL_STATES},
}


class InvalidTransition(WtrunnerError):
    """A state change the run's state does not allow (409 where a client asked for it)."""

    status = 409


def check_transition(run_id: str, old: RunState, new: RunState) -> None:
    """Raise InvalidTransition unless a run in ``old`` may move to ``new``."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"run {run_id} is {old.value}; it cannot become {new.value}")
