"""Following and ending submitted jobs: GetJob and DeleteJob through the real client, their
retries and errors, and the rate limit on look-ups."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.cloud import batch_v1

from tests.batch.fake import FakeBatch
from tests.batch.helpers import IMAGE, PARENT, submit
from tests.gcp_jobs_helpers import QUICK, VirtualClock
from tests.helpers import Client
from wtrunner.errors import ServiceUnavailableError
from wtrunner.invokers.batch_client import BatchApiError, BatchClient, SubmitPolicy
from wtrunner.invokers.batch_status import run_state_of
from wtrunner.keys import RUNS
from wtrunner.ratelimit import RateLimiter
from wtrunner.run_states import RunState
from wtrunner.settings import Settings

State = batch_v1.JobStatus.State


@pytest.fixture
def virtual() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def batch(
    fake: FakeBatch, tmp_path: Path, virtual: VirtualClock
) -> AsyncIterator[BatchClient]:
    """A BatchClient against the fake, its poll limit (5 a second) on the virtual clock."""
    limiter = virtual.limiter(5)
    client = BatchClient(
        Settings(cache_dir=tmp_path, batch_endpoint=fake.endpoint), QUICK, poll_limiter=limiter
    )
    yield client
    await client.close()


async def create(batch: BatchClient, job_id: str = "job-1") -> str:
    """Create a minimal job through the client; its name."""
    container = batch_v1.Runnable.Container(image_uri=IMAGE)
    task = batch_v1.TaskSpec(runnables=[batch_v1.Runnable(container=container)])
    request = batch_v1.CreateJobRequest(
        parent=PARENT,
        job_id=job_id,
        request_id=str(uuid.uuid4()),
        job=batch_v1.Job(task_groups=[batch_v1.TaskGroup(task_count=1, task_spec=task)]),
    )
    job = await batch.create_job(request)
    return str(job.name)


def at(seconds: int) -> dt.datetime:
    return dt.datetime(2025, 3, 1, 12, 0, seconds, tzinfo=dt.timezone.utc)


# --- GetJob ------------------------------------------------------------------------------------


async def test_a_submitted_job_is_looked_up_as_its_status_goes(
    client: Client, fake: FakeBatch
) -> None:
    status, _, headers = await submit(client)
    assert status == 202
    name = headers["X-Batch-Job"]
    batch = client.app[RUNS].context.clients["CloudBatchInvoker"]
    assert isinstance(batch, BatchClient)

    job = await batch.get_job(name)
    assert (job.name, job.status.state) == (name, State.QUEUED)
    assert run_state_of(job).state is RunState.SUBMITTED

    running = batch_v1.StatusEvent(
        type_="STATUS_CHANGED",
        description=f"Job state is set from SCHEDULED to RUNNING for job {name}.",
        event_time=at(10),
    )
    fake.set_state(name, State.RUNNING, events=[running])
    progress = run_state_of(await batch.get_job(name))
    assert (progress.state, progress.started_at, progress.finished_at) == (
        RunState.RUNNING,
        at(10),
        None,
    )

    failed = batch_v1.StatusEvent(
        type_="STATUS_CHANGED",
        description=f"Job state is set from RUNNING to FAILED for job {name}. Task 0 failed "
        "with exit code 3.",
        event_time=at(40),
        task_execution=batch_v1.TaskExecution(exit_code=3),
    )
    fake.set_state(name, State.FAILED, events=[failed], run_duration=dt.timedelta(seconds=30))
    progress = run_state_of(await batch.get_job(name))
    assert progress.state is RunState.FAILED
    assert (progress.started_at, progress.finished_at, progress.exit_code) == (at(10), at(40), 3)
    assert progress.error == f"The Cloud Batch job failed: {failed.description}"
    assert fake.get_calls == [name] * 3


async def test_the_fake_adds_batch_own_event_to_a_scripted_state(
    batch: BatchClient, fake: FakeBatch
) -> None:
    name = await create(batch)
    fake.set_state(name, State.SCHEDULED)
    fake.set_state(name, State.RUNNING)
    job = await batch.get_job(name)
    assert [event.description for event in job.status.status_events] == [
        f"Job state is set from QUEUED to SCHEDULED for job {name}.",
        f"Job state is set from SCHEDULED to RUNNING for job {name}.",
    ]
    assert run_state_of(job).started_at == job.status.status_events[1].event_time


async def test_an_unknown_job_is_not_found(batch: BatchClient, fake: FakeBatch) -> None:
    name = f"{PARENT}/jobs/never-created"
    with pytest.raises(BatchApiError) as raised:
        await batch.get_job(name)
    assert raised.value.code == "NOT_FOUND"
    assert raised.value.status == 502
    assert str(raised.value.detail) == (
        f"the Cloud Batch API refused GetJob {name}: NotFound (NOT_FOUND): Job {name} not found"
    )
    assert fake.get_calls == [name]  # not retried


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_transient_errors_of_a_look_up_are_retried(
    batch: BatchClient, fake: FakeBatch, code: grpc.StatusCode
) -> None:
    name = await create(batch)
    fake.fail_next(code, times=2, method="GetJob")
    job = await batch.get_job(name)
    assert job.status.state == State.QUEUED
    assert fake.get_calls == [name] * 3


async def test_a_look_up_that_never_answers_is_retried(fake: FakeBatch, tmp_path: Path) -> None:
    policy = SubmitPolicy(first_delay=0.01, attempt_timeout=0.3)
    batch = BatchClient(Settings(cache_dir=tmp_path, batch_endpoint=fake.endpoint), policy)
    try:
        name = await create(batch)
        fake.fail_next(grpc.StatusCode.OK, hang=True, method="GetJob")  # the deadline passes
        assert (await batch.get_job(name)).name == name
        assert fake.get_calls == [name] * 2
    finally:
        await batch.close()


async def test_a_look_up_unavailable_throughout_is_503(batch: BatchClient, fake: FakeBatch) -> None:
    name = await create(batch)
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, "backend down", times=100_000, method="GetJob")
    with pytest.raises(ServiceUnavailableError) as raised:
        await batch.get_job(name)
    tried = len(fake.get_calls)
    assert tried >= 2
    assert str(raised.value.detail) == (
        f"the Cloud Batch API was not available for GetJob {name} (tried {tried} times): "
        "ServiceUnavailable (UNAVAILABLE): backend down"
    )


@pytest.mark.parametrize("method", ["GetJob", "DeleteJob"])
async def test_a_permanent_error_is_a_batch_api_error_not_retried(
    batch: BatchClient, fake: FakeBatch, method: str
) -> None:
    name = await create(batch)
    fake.fail_next(grpc.StatusCode.PERMISSION_DENIED, "the API says no", times=5, method=method)
    with pytest.raises(BatchApiError) as raised:
        await (batch.get_job(name) if method == "GetJob" else batch.delete_job(name))
    assert raised.value.code == "PERMISSION_DENIED"
    assert str(raised.value.detail) == (
        f"the Cloud Batch API refused {method} {name}: "
        "PermissionDenied (PERMISSION_DENIED): the API says no"
    )
    assert len(fake.get_calls) + len(fake.delete_requests) == 1
    assert fake.deleted == []
    assert fake.jobs[name].status.state == State.QUEUED


# --- DeleteJob ---------------------------------------------------------------------------------


async def test_delete_starts_the_deletion_and_a_gone_job_counts_as_deleted(
    batch: BatchClient, fake: FakeBatch
) -> None:
    name = await create(batch)
    other = await create(batch, "job-2")
    assert await batch.delete_job(name) is True
    assert fake.deleted == [name]
    job = await batch.get_job(name)  # Batch is still deleting it
    assert job.status.state == State.DELETION_IN_PROGRESS
    assert run_state_of(job).state is RunState.CANCELLED

    assert fake.finish_deletions() == [name]
    assert await batch.delete_job(name) is False  # gone: NOT_FOUND is no error
    with pytest.raises(BatchApiError) as raised:
        await batch.get_job(name)
    assert raised.value.code == "NOT_FOUND"
    assert [r.name for r in fake.delete_requests] == [name, name]
    assert list(fake.jobs) == [other]


async def test_deleting_a_job_being_deleted_is_fine(batch: BatchClient, fake: FakeBatch) -> None:
    name = await create(batch)
    assert await batch.delete_job(name) is True
    assert await batch.delete_job(name) is True
    assert fake.deleted == [name]
    first, second = fake.delete_requests
    assert first.request_id != second.request_id  # two deletions asked, not one retried


@pytest.mark.parametrize("after_doing", [False, True])
async def test_transient_errors_of_a_deletion_are_retried_with_the_same_request(
    batch: BatchClient, fake: FakeBatch, after_doing: bool
) -> None:
    name = await create(batch)
    # after_doing: the deletion began but its answer was lost.
    fake.fail_next(
        grpc.StatusCode.UNAVAILABLE, times=2, method="DeleteJob", after_doing=after_doing
    )
    assert await batch.delete_job(name) is True
    assert len(fake.delete_requests) == 3
    assert len({(r.name, r.request_id) for r in fake.delete_requests}) == 1
    uuid.UUID(fake.delete_requests[0].request_id)
    assert fake.deleted == [name]


async def test_a_deletion_retried_after_the_job_went_counts_as_deleted(
    batch: BatchClient, fake: FakeBatch
) -> None:
    name = await create(batch)
    # The first attempt deletes the job, Batch finishes at once, and the answer is lost.
    fake.finish_deletions_at_once = True
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, method="DeleteJob", after_doing=True)
    assert await batch.delete_job(name) is False  # the retry finds it gone
    assert [r.name for r in fake.delete_requests] == [name, name]
    assert (fake.deleted, fake.jobs) == ([name], {})


# --- the rate limit of look-ups ----------------------------------------------------------------


def test_the_limiter_spaces_calls_by_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.2, 0.4, 0.6])
    now[0] = 0.3  # the first two slots have passed
    assert limiter.reserve() == pytest.approx(0.5)  # after the one at 0.6
    now[0] = 10.0  # idle long enough: at once again, but no more than one at once
    assert [limiter.reserve() for _ in range(2)] == pytest.approx([0.0, 0.2])


def test_the_limiter_lets_a_burst_through_then_spaces() -> None:
    now = [0.0]
    limiter = RateLimiter(2, burst=3, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(5)] == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])
    now[0] = 100.0
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


@pytest.mark.parametrize(
    ("rate", "burst", "named"),
    [(0, 1, "rate"), (-1, 1, "rate"), (float("inf"), 1, "rate"), (1, 0, "burst")],
)
def test_the_limiter_refuses_unusable_limits(rate: float, burst: int, named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named} must be"):
        RateLimiter(rate, burst=burst)


async def test_look_ups_wait_for_the_rate_limit(
    batch: BatchClient, fake: FakeBatch, virtual: VirtualClock
) -> None:
    names = [await create(batch, f"job-{n}") for n in range(4)]
    jobs = await asyncio.gather(*(batch.get_job(name) for name in names))
    assert [job.name for job in jobs] == names
    assert sorted(fake.get_calls) == sorted(names)
    # 4 look-ups at 5 a second: the last one no sooner than 3/5 s after the first.
    assert virtual.sleeps == pytest.approx([0.2] * 3)
    assert virtual.now == pytest.approx(0.6)


async def test_each_retry_of_a_look_up_counts_against_the_limit(
    batch: BatchClient, fake: FakeBatch, virtual: VirtualClock
) -> None:
    name = await create(batch)
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=2, method="GetJob")
    await batch.get_job(name)
    assert len(fake.get_calls) == 3
    assert virtual.sleeps == pytest.approx([0.2, 0.2])  # three calls, 1/5 s apart


async def test_creating_and_deleting_do_not_wait_for_the_poll_limit(
    batch: BatchClient, fake: FakeBatch, virtual: VirtualClock
) -> None:
    names = [await create(batch, f"job-{n}") for n in range(3)]
    for name in names:
        assert await batch.delete_job(name)
    assert virtual.sleeps == []
    assert fake.deleted == names


def test_the_poll_rate_comes_from_the_setting(tmp_path: Path) -> None:
    assert BatchClient(Settings(cache_dir=tmp_path)).poll_limiter.rate == 5
    settings = Settings(cache_dir=tmp_path, batch_poll_rate=0.5)
    limiter = BatchClient(settings).poll_limiter
    assert (limiter.rate, limiter.interval, limiter.burst) == (0.5, 2.0, 1)
