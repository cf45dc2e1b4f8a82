"""Cloud Batch runs as records: the reconciler follows each job to its end, cancel deletes it.

The real google-cloud-batch client talks gRPC to the fake; the result.json of a succeeded job
is read from a GCS emulator, as a job elsewhere would have written it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from google.cloud import batch_v1

from tests.batch.fake import FakeBatch
from tests.batch.helpers import batch_settings, submit
from tests.gcs_helpers import gcs_options, upload_object, writable_gcs
from tests.helpers import Client, ClientFactory
from wtrunner.batch_tracking import GONE_MESSAGE
from wtrunner.keys import RUNS
from wtrunner.run_states import RunState

State = batch_v1.JobStatus.State


@pytest.fixture
async def client(make_client: ClientFactory, fake: FakeBatch, gcs: str) -> AsyncIterator[Client]:
    """The app for Cloud Batch, reading results from the GCS emulator; the reconciler's own
    rounds are an hour apart, so each test drives its rounds itself."""
    async with writable_gcs(gcs) as store:
        options = json.dumps(gcs_options(store))
        yield await make_client(
            **batch_settings(fake, object_store_options=options, batch_poll_seconds=3600)
        )


async def _submitted(client: Client, results_url: str) -> tuple[str, str]:
    status, _, headers = await submit(client, results_url=results_url)
    assert status == 202
    run_id = headers["X-Run-ID"]
    record = await client.app[RUNS].get(run_id)
    assert record.state is RunState.SUBMITTED
    assert record.job_name is not None
    return run_id, record.job_name


async def _run(client: Client, run_id: str) -> dict[str, object]:
    response = await client.get(f"/runs/{run_id}")
    assert response.status == 200
    body: dict[str, object] = await response.json()
    return body


async def test_a_job_is_followed_from_queued_to_running_to_succeeded(
    client: Client, fake: FakeBatch, gcs: str, bucket: str
) -> None:
    runs = client.app[RUNS]
    run_id, job = await _submitted(client, f"gs://{bucket}/runs/r1")

    assert await runs.track_batch_jobs() == 1
    assert (await _run(client, run_id))["state"] == "submitted"  # queued at Batch
    assert fake.get_calls == [job]

    fake.set_state(job, State.SCHEDULED)
    fake.set_state(job, State.RUNNING)
    await runs.track_batch_jobs()
    running = await _run(client, run_id)
    assert running["state"] == "running" and running["started_at"] is not None

    document = {"result": {"patrols": 7}, "error": None, "trace": None}
    await upload_object(gcs, bucket, "runs/r1/result.json", document)
    fake.set_state(job, State.SUCCEEDED)
    await runs.track_batch_jobs()
    done = await _run(client, run_id)
    assert done["state"] == "succeeded"
    assert done["outcome"] == {**document, "kind": "ok", "exit_code": 0}
    assert done["finished_at"] is not None

    calls = len(fake.get_calls)
    assert await runs.track_batch_jobs() == 0, "a finished run is not polled again"
    assert len(fake.get_calls) == calls


async def test_a_failed_job_fails_its_run_with_batchs_reason(
    client: Client, fake: FakeBatch, bucket: str
) -> None:
    runs = client.app[RUNS]
    run_id, job = await _submitted(client, f"gs://{bucket}/runs/r2")
    reason = "Job state is set from RUNNING to FAILED for job x. Task failed with exit code 3."
    fake.set_state(job, State.RUNNING)
    fake.set_state(
        job, State.FAILED,
        events=[batch_v1.StatusEvent(type_="STATUS_CHANGED", description=reason)],
    )  # fmt: skip
    await runs.track_batch_jobs()
    failed = await _run(client, run_id)
    assert failed["state"] == "failed"
    outcome = failed["outcome"]
    assert isinstance(outcome, dict)
    assert outcome["kind"] == "crash" and "exit code 3" in outcome["error"]


async def test_a_job_that_succeeded_without_a_result_fails_its_run(
    client: Client, fake: FakeBatch, bucket: str
) -> None:
    run_id, job = await _submitted(client, f"gs://{bucket}/runs/r3")
    fake.set_state(job, State.SUCCEEDED)
    await client.app[RUNS].track_batch_jobs()
    run = await _run(client, run_id)
    assert run["state"] == "failed"
    assert "wrote no result.json" in str(run["outcome"])


async def test_cancel_deletes_the_job(client: Client, fake: FakeBatch, bucket: str) -> None:
    run_id, job = await _submitted(client, f"gs://{bucket}/runs/r4")
    fake.set_state(job, State.RUNNING)
    await client.app[RUNS].track_batch_jobs()

    answer = await client.post(f"/runs/{run_id}/cancel")
    assert answer.status == 202
    assert (await answer.json())["state"] == "cancelled"
    assert fake.deleted == [job]
    assert (await client.post(f"/runs/{run_id}/cancel")).status == 409
    assert await client.app[RUNS].track_batch_jobs() == 0


async def test_a_job_deleted_behind_the_services_back_loses_its_run(
    client: Client, fake: FakeBatch, bucket: str
) -> None:
    run_id, job = await _submitted(client, f"gs://{bucket}/runs/r5")
    del fake.jobs[job]
    await client.app[RUNS].track_batch_jobs()
    run = await _run(client, run_id)
    assert run["state"] == "lost"
    assert run["outcome"] == {
        "kind": "lost", "error": GONE_MESSAGE.format(job=job), "result": None, "trace": None,
        "exit_code": None,
    }  # fmt: skip
