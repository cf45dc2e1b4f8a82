"""What a Cloud Run Jobs execution's status means for its run's record: pure, no API call.

:func:`execution_progress` reads a ``google.cloud.run_v2.Execution`` (as ``GetExecution``
answers it). Cloud Run reports an execution's end in its ``Completed`` condition:

- ``CONDITION_SUCCEEDED``: succeeded;
- ``CONDITION_FAILED``: failed, with the condition's message as the run's error, unless its
  execution reason is ``CANCELLED`` or ``DELETED`` (ended on request: cancelled);
- not ended (pending, reconciling, or no such condition yet): cancelled while its reason is
  ``CANCELLING``; otherwise running once Cloud Run started it (``start_time``, or a task
  running), else submitted.

An execution that says it completed (``completion_time``) without a ``Completed`` condition is
judged by its task counts. ``started_at`` is ``start_time``; ``finished_at`` is
``completion_time`` (or the ``Completed`` condition's last transition). Nothing else of the
execution is read for messages: its template holds the run's command line and environment.

States and reasons are compared by name, so this module needs no Google library.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..run_states import RunState
from .remote_jobs import JobProgress, as_utc

COMPLETED = "Completed"
# Longest part of Cloud Run's message kept in a run's error.
MAX_MESSAGE = 1000
ENDED_ON_REQUEST = frozenset({"CANCELLED", "DELETED"})


def execution_progress(execution: Any) -> JobProgress:
    """What the record of the run whose execution is ``execution`` should say."""
    completed = next((c for c in execution.conditions if c.type_ == COMPLETED), None)
    state_name = _name(completed.state) if completed is not None else ""
    reason = _name(completed.execution_reason) if completed is not None else ""
    started_at = _time(execution, "start_time")
    finished_at = _time(execution, "completion_time")
    if finished_at is None and completed is not None and "last_transition_time" in completed:
        finished_at = as_utc(completed.last_transition_time)

    if state_name == "CONDITION_SUCCEEDED":
        return JobProgress(RunState.SUCCEEDED, started_at=started_at, finished_at=finished_at)
    if state_name == "CONDITION_FAILED":
        if reason in ENDED_ON_REQUEST:
            return JobProgress(RunState.CANCELLED, started_at=started_at, finished_at=finished_at)
        error = failure_message(completed.message if completed is not None else "")
        return JobProgress(
            RunState.FAILED, error=error, started_at=started_at, finished_at=finished_at
        )
    if reason == "CANCELLING":
        return JobProgress(RunState.CANCELLED, started_at=started_at, finished_at=finished_at)
    if finished_at is not None and "completion_time" in execution:
        return _by_counts(execution, started_at, finished_at)
    if started_at is not None or execution.running_count > 0:
        return JobProgress(RunState.RUNNING, started_at=started_at)
    return JobProgress(RunState.SUBMITTED)


def failure_message(message: str) -> str:
    """The error of a failed execution: Cloud Run's message of its ``Completed`` condition."""
    message = message.strip()
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return (
        f"The Cloud Run execution failed: {message}"
        if message
        else ("The Cloud Run execution failed.")
    )


def _by_counts(
    execution: Any, started_at: dt.datetime | None, finished_at: dt.datetime
) -> JobProgress:
    """An ended execution without a ``Completed`` condition: what its task counts say."""
    if execution.cancelled_count > 0:
        return JobProgress(RunState.CANCELLED, started_at=started_at, finished_at=finished_at)
    if execution.failed_count > 0 or execution.succeeded_count < max(1, execution.task_count):
        return JobProgress(
            RunState.FAILED,
            error=failure_message(f"{execution.failed_count} of its tasks failed"),
            started_at=started_at,
            finished_at=finished_at,
        )
    return JobProgress(RunState.SUCCEEDED, started_at=started_at, finished_at=finished_at)


def _name(value: Any) -> str:
    """An enum value's name; an unknown value of a newer API (an int) has none."""
    return str(getattr(value, "name", ""))


def _time(execution: Any, field: str) -> dt.datetime | None:
    return as_utc(getattr(execution, field)) if field in execution else None
