"""What a Cloud Batch job's status means for its run's record: pure, no API call.

:func:`run_state_of` reads a ``google.cloud.batch_v1.Job`` (as ``GetJob`` answers it) and says
which :class:`~wtrunner.run_states.RunState` the run is in:

- ``STATE_UNSPECIFIED``, ``QUEUED``, ``SCHEDULED`` (or a state of a newer API): submitted;
- ``RUNNING``: running; ``SUCCEEDED``: succeeded; ``FAILED``: failed;
- ``DELETION_IN_PROGRESS``, ``CANCELLATION_IN_PROGRESS``, ``CANCELLED``: cancelled (the job is
  being ended on request; whether a run that had ended already stays so is the caller's call).

A failed job's error is Batch's description of its last status event (which names the failed
task and its exit code), with the exit code. Nothing else of the job is read for messages: its
environment and command may hold a run's data-connection values. ``started_at`` is when Batch
set the job RUNNING (its status event, or the end less ``run_duration``); ``finished_at``, for a
job that has ended, the time of its last status event.

The states are compared by name, so this module needs no Google library.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..run_states import RunState
from .remote_jobs import JobProgress
from .remote_jobs import as_utc as _utc

__all__ = ["MAX_DESCRIPTION", "RUN_STATE_OF_JOB_STATE", "JobProgress", "run_state_of"]

# Longest part of Batch's description kept in a run's error.
MAX_DESCRIPTION = 1000

RUN_STATE_OF_JOB_STATE = {
    "STATE_UNSPECIFIED": RunState.SUBMITTED,
    "QUEUED": RunState.SUBMITTED,
    "SCHEDULED": RunState.SUBMITTED,
    "RUNNING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "DELETION_IN_PROGRESS": RunState.CANCELLED,
    "CANCELLATION_IN_PROGRESS": RunState.CANCELLED,
    "CANCELLED": RunState.CANCELLED,
}
# "Job state is set from SCHEDULED to RUNNING for job projects/..."
_TO_RUNNING = re.compile(r"\bto RUNNING\b")


def run_state_of(job: Any) -> JobProgress:
    """What the record of the run whose Batch job is ``job`` (a ``batch_v1.Job``) should say."""
    status = job.status
    name = getattr(status.state, "name", None)  # an unknown value of a newer API is an int
    state = RUN_STATE_OF_JOB_STATE.get(name or "", RunState.SUBMITTED)
    events = list(status.status_events)
    finished_at = _finished_at(job, events) if state.final else None
    started_at = _started_at(job, events, finished_at) if state is not RunState.SUBMITTED else None
    error = exit_code = None
    if state is RunState.FAILED:
        exit_code = _exit_code(events)
        error = failure_message(events, exit_code)
    return JobProgress(state, error, exit_code, started_at, finished_at)


def failure_message(events: list[Any], exit_code: int | None) -> str:
    """The error of a failed job: Batch's description of its last status event that has one."""
    description = next((e.description.strip() for e in reversed(events) if e.description), "")
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1] + "…"
    message = "The Cloud Batch job failed"
    message += f": {description}" if description else "."
    if exit_code is not None and f"exit code {exit_code}" not in description:
        message += f" (exit code {exit_code})"
    return message


def _exit_code(events: list[Any]) -> int | None:
    """The exit code of the last event that carries a task execution."""
    for event in reversed(events):
        if "task_execution" in event:
            return int(event.task_execution.exit_code)
    return None


def _finished_at(job: Any, events: list[Any]) -> dt.datetime | None:
    """When an ended job ended: its last status event's time, or its last update."""
    for event in reversed(events):
        if "event_time" in event:
            return _utc(event.event_time)
    return _utc(job.update_time) if "update_time" in job else None


def _started_at(job: Any, events: list[Any], finished_at: dt.datetime | None) -> dt.datetime | None:
    """When the job began running: Batch's event saying so, else its end (or last update)
    less the time it ran."""
    for event in events:
        if "event_time" in event and _TO_RUNNING.search(event.description):
            return _utc(event.event_time)
    if "run_duration" not in job.status:
        return None
    end = finished_at or (_utc(job.update_time) if "update_time" in job else None)
    return end - job.status.run_duration if end is not None else None
