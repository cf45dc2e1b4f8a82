"""What a Batch job's status means for its run: every job state, a failure's error and exit code,
and the times, read from real ``batch_v1.Job`` messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from google.cloud import batch_v1

from wtrunner.invokers.batch_status import MAX_DESCRIPTION, JobProgress, run_state_of
from wtrunner.run_states import RunState

State = batch_v1.JobStatus.State
# Job cancellation (CANCELLATION_IN_PROGRESS, CANCELLED) came in later google-cloud-batch
# releases than the lowest one supported; the mapping goes by name and handles both.
NEEDS_CANCELLATION = pytest.mark.skipif(
    "CANCELLED" not in State.__members__, reason="this google-cloud-batch has no job cancellation"
)
NAME = "projects/test-project/locations/europe-west1/jobs/run-1-1f3a9c0e"


def at(seconds: int) -> dt.datetime:
    return dt.datetime(2025, 3, 1, 12, 0, seconds, tzinfo=dt.timezone.utc)


def event(description: str, seconds: int, exit_code: int | None = None) -> Any:
    """A STATUS_CHANGED event as Batch writes it."""
    message = batch_v1.StatusEvent(
        type_="STATUS_CHANGED", description=description, event_time=at(seconds)
    )
    if exit_code is not None:
        message.task_execution = batch_v1.TaskExecution(exit_code=exit_code)
    return message


def changed(old: str, new: str, seconds: int) -> Any:
    return event(f"Job state is set from {old} to {new} for job {NAME}.", seconds)


def job(state: Any, *events: Any, run_duration: dt.timedelta | None = None) -> Any:
    """A Job as GetJob answers it, through its wire form like the client's."""
    status = batch_v1.JobStatus(state=state, status_events=list(events))
    if run_duration is not None:
        status.run_duration = run_duration
    message = batch_v1.Job(name=NAME, status=status, create_time=at(0), update_time=at(59))
    return batch_v1.Job.deserialize(batch_v1.Job.serialize(message))


QUEUED = changed("STATE_UNSPECIFIED", "QUEUED", 1)
SCHEDULED = changed("QUEUED", "SCHEDULED", 5)
RUNNING = changed("SCHEDULED", "RUNNING", 10)


@pytest.mark.parametrize(
    ("state", "events", "expected"),
    [
        (State.STATE_UNSPECIFIED, [], JobProgress(RunState.SUBMITTED)),
        (State.QUEUED, [QUEUED], JobProgress(RunState.SUBMITTED)),
        (State.SCHEDULED, [QUEUED, SCHEDULED], JobProgress(RunState.SUBMITTED)),
        (
            State.RUNNING,
            [QUEUED, SCHEDULED, RUNNING],
            JobProgress(RunState.RUNNING, started_at=at(10)),
        ),
        (
            State.SUCCEEDED,
            [SCHEDULED, RUNNING, changed("RUNNING", "SUCCEEDED", 30)],
            JobProgress(RunState.SUCCEEDED, started_at=at(10), finished_at=at(30)),
        ),
        (
            State.DELETION_IN_PROGRESS,
            [RUNNING, changed("RUNNING", "DELETION_IN_PROGRESS", 20)],
            JobProgress(RunState.CANCELLED, started_at=at(10), finished_at=at(20)),
        ),
        (
            State.DELETION_IN_PROGRESS,
            [QUEUED, changed("QUEUED", "DELETION_IN_PROGRESS", 3)],
            JobProgress(RunState.CANCELLED, finished_at=at(3)),  # it never ran
        ),
        pytest.param(
            getattr(State, "CANCELLATION_IN_PROGRESS", None),
            [RUNNING, changed("RUNNING", "CANCELLATION_IN_PROGRESS", 20)],
            JobProgress(RunState.CANCELLED, started_at=at(10), finished_at=at(20)),
            marks=NEEDS_CANCELLATION,
        ),
        pytest.param(
            getattr(State, "CANCELLED", None),
            [RUNNING, changed("CANCELLATION_IN_PROGRESS", "CANCELLED", 25)],
            JobProgress(RunState.CANCELLED, started_at=at(10), finished_at=at(25)),
            marks=NEEDS_CANCELLATION,
        ),
    ],
)
def test_each_job_state_maps_to_a_run_state(
    state: Any, events: list[Any], expected: JobProgress
) -> None:
    assert run_state_of(job(state, *events)) == expected


def test_every_job_state_of_the_api_is_mapped() -> None:
    expected = {
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
    known = {name: state for name, state in expected.items() if name in State.__members__}
    assert {s.name: run_state_of(job(s)).state for s in State.__members__.values()} == known


def test_a_failed_job_says_why_with_its_exit_code() -> None:
    failure = event(
        f"Job state is set from RUNNING to FAILED for job {NAME}. Job failed due to task "
        'failure. Specifically, task with index 0 failed due to the following task event: "Task '
        "state is updated from RUNNING to FAILED on zones/europe-west1-b/instances/123 with exit "
        'code 50002."',
        45,
        exit_code=50002,
    )
    progress = run_state_of(job(State.FAILED, QUEUED, RUNNING, failure))
    assert progress == JobProgress(
        RunState.FAILED,
        error=f"The Cloud Batch job failed: {failure.description}",  # the code is in it already
        exit_code=50002,
        started_at=at(10),
        finished_at=at(45),
    )


def test_the_exit_code_is_added_when_the_description_does_not_name_it() -> None:
    failure = event("Task 0 failed.", 45, exit_code=1)
    progress = run_state_of(job(State.FAILED, RUNNING, failure))
    assert progress.error == "The Cloud Batch job failed: Task 0 failed. (exit code 1)"
    assert progress.exit_code == 1


def test_the_last_event_with_a_description_is_the_reason() -> None:
    progress = run_state_of(
        job(State.FAILED, RUNNING, event("Out of quota in europe-west1.", 30), event("", 31))
    )
    assert progress.error == "The Cloud Batch job failed: Out of quota in europe-west1."
    assert (progress.exit_code, progress.finished_at) == (None, at(31))


def test_a_failed_job_without_events_still_has_an_error() -> None:
    progress = run_state_of(job(State.FAILED))
    assert progress.error == "The Cloud Batch job failed."
    assert progress.finished_at == at(59)  # the job's last update
    assert progress.started_at is None


def test_a_long_description_is_cut() -> None:
    progress = run_state_of(job(State.FAILED, event("x" * 5000, 30)))
    assert progress.error is not None
    assert progress.error.endswith("x…")
    assert len(progress.error) == len("The Cloud Batch job failed: ") + MAX_DESCRIPTION


def test_only_the_status_is_read_never_the_job_environment() -> None:
    secret = "er-password-value"
    message = job(State.FAILED, event("Task 0 failed.", 30, exit_code=2))
    environment = batch_v1.Environment(variables={"ER_PASSWORD": secret})
    container = batch_v1.Runnable.Container(image_uri="image", commands=["run", secret])
    task = batch_v1.TaskSpec(
        runnables=[batch_v1.Runnable(container=container)], environment=environment
    )
    message.task_groups = [batch_v1.TaskGroup(task_spec=task)]
    progress = run_state_of(message)
    assert secret not in repr(progress)


def test_without_a_running_event_the_start_comes_from_the_run_duration() -> None:
    ended = run_state_of(
        job(State.SUCCEEDED, event("done", 50), run_duration=dt.timedelta(seconds=35))
    )
    assert (ended.started_at, ended.finished_at) == (at(15), at(50))
    running = run_state_of(job(State.RUNNING, run_duration=dt.timedelta(seconds=9)))
    assert (running.started_at, running.finished_at) == (at(50), None)  # last update less 9 s
    assert run_state_of(job(State.RUNNING)).started_at is None


def test_times_are_plain_utc_datetimes() -> None:
    progress = run_state_of(job(State.SUCCEEDED, RUNNING, changed("RUNNING", "SUCCEEDED", 30)))
    for moment in (progress.started_at, progress.finished_at):
        assert type(moment) is dt.datetime
        assert moment.tzinfo is dt.timezone.utc


@pytest.mark.filterwarnings("ignore:Unrecognized State enum value")
def test_a_state_of_a_newer_api_is_submitted() -> None:
    message = job(State.RUNNING, RUNNING)
    batch_v1.Job.pb(message).status.state = 42  # not in this library's enum
    assert run_state_of(message) == JobProgress(RunState.SUBMITTED)
