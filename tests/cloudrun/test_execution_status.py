"""What an execution's status means for its run: every condition Cloud Run reports, read from
executions as GetExecution answers them (through the real client and the fake) and as built
here for the states the fake does not script."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from google.cloud import run_v2

from tests.cloudrun.fake import FakeCloudRun, Reason, State
from tests.cloudrun.helpers import submit
from tests.helpers import Client
from wtrunner.invokers.cloudrun_client import CloudRunClient
from wtrunner.invokers.cloudrun_status import MAX_MESSAGE, execution_progress
from wtrunner.invokers.remote_jobs import JobProgress
from wtrunner.keys import RUNS
from wtrunner.run_states import RunState


def at(seconds: int) -> dt.datetime:
    return dt.datetime(2026, 3, 1, 12, 0, seconds, tzinfo=dt.timezone.utc)


def execution(*conditions: run_v2.Condition, **fields: object) -> run_v2.Execution:
    return run_v2.Execution(
        name="projects/p/locations/l/jobs/j/executions/j-abcde",
        task_count=1,
        conditions=list(conditions),
        **fields,
    )


def condition(state: State, reason: Reason = Reason.EXECUTION_REASON_UNDEFINED, message: str = "",
              when: dt.datetime | None = None) -> run_v2.Condition:  # fmt: skip
    return run_v2.Condition(
        type_="Completed", state=state, execution_reason=reason, message=message,
        last_transition_time=when,
    )  # fmt: skip


def _cases() -> Iterator[tuple[str, run_v2.Execution, JobProgress]]:
    started = {"start_time": at(5)}
    ended = {"start_time": at(5), "completion_time": at(40)}
    yield "no condition yet", execution(), JobProgress(RunState.SUBMITTED)
    yield (
        "pending",
        execution(condition(State.CONDITION_PENDING)),
        JobProgress(RunState.SUBMITTED),
    )
    yield (
        "reconciling, started",
        execution(condition(State.CONDITION_RECONCILING), **started),
        JobProgress(RunState.RUNNING, started_at=at(5)),
    )
    yield (
        "a task running, no start time yet",
        execution(condition(State.CONDITION_RECONCILING), running_count=1),
        JobProgress(RunState.RUNNING),
    )
    yield (
        "succeeded",
        execution(condition(State.CONDITION_SUCCEEDED), succeeded_count=1, **ended),
        JobProgress(RunState.SUCCEEDED, started_at=at(5), finished_at=at(40)),
    )
    yield (
        "failed",
        execution(
            condition(State.CONDITION_FAILED, Reason.NON_ZERO_EXIT_CODE, "Task 0 failed."),
            failed_count=1,
            **ended,
        ),
        JobProgress(
            RunState.FAILED,
            error="The Cloud Run execution failed: Task 0 failed.",
            started_at=at(5),
            finished_at=at(40),
        ),
    )
    yield (
        "failed without a message, ended when the condition says",
        execution(condition(State.CONDITION_FAILED, when=at(41)), **started),
        JobProgress(
            RunState.FAILED,
            error="The Cloud Run execution failed.",
            started_at=at(5),
            finished_at=at(41),
        ),
    )
    yield (
        "cancelling",
        execution(condition(State.CONDITION_RECONCILING, Reason.CANCELLING), **started),
        JobProgress(RunState.CANCELLED, started_at=at(5)),
    )
    yield (
        "cancelled",
        execution(condition(State.CONDITION_FAILED, Reason.CANCELLED), **ended),
        JobProgress(RunState.CANCELLED, started_at=at(5), finished_at=at(40)),
    )
    yield (
        "deleted",
        execution(condition(State.CONDITION_FAILED, Reason.DELETED), **ended),
        JobProgress(RunState.CANCELLED, started_at=at(5), finished_at=at(40)),
    )
    yield (
        "ended without a condition: all tasks succeeded",
        execution(succeeded_count=1, **ended),
        JobProgress(RunState.SUCCEEDED, started_at=at(5), finished_at=at(40)),
    )
    yield (
        "ended without a condition: a task failed",
        execution(failed_count=1, **ended),
        JobProgress(
            RunState.FAILED,
            error="The Cloud Run execution failed: 1 of its tasks failed",
            started_at=at(5),
            finished_at=at(40),
        ),
    )
    yield (
        "ended without a condition: a task cancelled",
        execution(cancelled_count=1, **ended),
        JobProgress(RunState.CANCELLED, started_at=at(5), finished_at=at(40)),
    )
    yield (
        "another condition type only",
        execution(run_v2.Condition(type_="ResourcesAvailable", state=State.CONDITION_SUCCEEDED)),
        JobProgress(RunState.SUBMITTED),
    )


CASES = list(_cases())


@pytest.mark.parametrize(
    ("given", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_every_condition_maps_to_a_run_state(
    given: run_v2.Execution, expected: JobProgress
) -> None:
    assert execution_progress(given) == expected


def test_an_unknown_state_of_a_newer_api_is_not_an_end() -> None:
    newer = execution(run_v2.Condition(type_="Completed", state=9))
    with pytest.warns(UserWarning, match="Unrecognized State enum value: 9"):  # proto-plus
        assert execution_progress(newer) == JobProgress(RunState.SUBMITTED)


def test_a_long_message_is_cut() -> None:
    progress = execution_progress(execution(condition(State.CONDITION_FAILED, message="x" * 5000)))
    assert progress.error is not None
    assert len(progress.error) < MAX_MESSAGE + 40 and progress.error.endswith("…")


def test_nothing_but_the_condition_is_read_for_the_error() -> None:
    template = run_v2.TaskTemplate(
        containers=[run_v2.Container(args=["--secret-canary"], env=[
            run_v2.EnvVar(name="TOKEN", value="token-canary")
        ])]
    )  # fmt: skip
    progress = execution_progress(
        execution(condition(State.CONDITION_FAILED, message="boom"), template=template)
    )
    assert progress.error == "The Cloud Run execution failed: boom"


async def test_the_states_read_through_the_client(client: Client, fake: FakeCloudRun) -> None:
    status, _, headers = await submit(client)
    assert status == 202
    name = headers["X-Batch-Job"]
    cloud_run = client.app[RUNS].context.clients["CloudRunJobsSandboxInvoker"]
    assert isinstance(cloud_run, CloudRunClient)

    async def state() -> RunState:
        return execution_progress(await cloud_run.get_execution(name)).state

    assert await state() is RunState.SUBMITTED
    fake.start_tasks(name)
    assert await state() is RunState.RUNNING
    await cloud_run.cancel_execution(name)
    assert await state() is RunState.CANCELLED  # cancelling counts as cancelled
    fake.finish_cancellations()
    progress = execution_progress(await cloud_run.get_execution(name))
    assert progress.state is RunState.CANCELLED and progress.finished_at is not None
    assert not await cloud_run.cancel_execution(name)  # ended: nothing left to cancel
