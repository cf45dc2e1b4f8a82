"""Cloud Batch runs as records: the reconciler follows each job to its end, cancel deletes it.

The real google-cloud-batch client talks gRPC to the fake; the result.json of a succeeded job
is read from a GCS emulator, as a job elsewhere would have written it.
"""

from __future__ import annotations

from google.cloud import batch_v1

from tests.batch.fake import FakeBatch
from tests.batch.helpers import submit
from tests.gcp_jobs_helpers import run_json, submitted_job
from tests.gcs_helpers import upload_object
from tests.helpers import Client
from wtrunner.job_tracking import GONE_MESSAGE
from wtrunner.keys import RUNS

State = batch_v1.JobStatus.State


async def test_a_job_is_followed_from_queued_to_running_to_succeeded(
    gcs_client: Client, fake: FakeBatch, gcs: str, bucket: str
) -> None:
    runs = gcs_client.app[RUNS]
    run_id, job = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r1")

    assert await runs.track_remote_jobs() == 1
    assert (await run_json(gcs_client, run_id))["state"] == "submitted"  # queued at Batch
    assert fake.get_calls == [job]

    fake.set_state(job, State.SCHEDULED)
    fake.set_state(job, State.RUNNING)
    await runs.track_remote_jobs()
    running = await run_json(gcs_client, run_id)
    assert running["state"] == "running" and running["started_at"] is not None

    document = {"result": {"patrols": 7}, "error": None, "trace": None}
    await upload_object(gcs, bucket, "runs/r1/result.json", document)
    fake.set_state(job, State.SUCCEEDED)
    await runs.track_remote_jobs()
    done = await run_json(gcs_client, run_id)
    assert done["state"] == "succeeded"
    assert done["outcome"] == {**document, "kind": "ok", "exit_code": 0}
    assert done["finished_at"] is not None

    calls = len(fake.get_calls)
    assert await runs.track_remote_jobs() == 0, "a finished run is not polled again"
    assert len(fake.get_calls) == calls


async def test_a_failed_job_fails_its_run_with_batchs_reason(
    gcs_client: Client, fake: FakeBatch, bucket: str
) -> None:
    runs = gcs_client.app[RUNS]
    run_id, job = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r2")
    reason = "Job state is set from RUNNING to FAILED for job x. Task failed with exit code 3."
    fake.set_state(job, State.RUNNING)
    fake.set_state(
        job, State.FAILED,
        events=[batch_v1.StatusEvent(type_="STATUS_CHANGED", description=reason)],
    )  # fmt: skip
    await runs.track_remote_jobs()
    failed = await run_json(gcs_client, run_id)
    assert failed["state"] == "failed"
    outcome = failed["outcome"]
    assert isinstance(outcome, dict)
    assert outcome["kind"] == "crash" and "exit code 3" in outcome["error"]


async def test_a_job_that_succeeded_without_a_result_fails_its_run(
    gcs_client: Client, fake: FakeBatch, bucket: str
) -> None:
    run_id, job = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r3")
    fake.set_state(job, State.SUCCEEDED)
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "failed"
    assert "wrote no result.json" in str(run["outcome"])


async def test_cancel_deletes_the_job(gcs_client: Client, fake: FakeBatch, bucket: str) -> None:
    run_id, job = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r4")
    fake.set_state(job, State.RUNNING)
    await gcs_client.app[RUNS].track_remote_jobs()

    answer = await gcs_client.post(f"/runs/{run_id}/cancel")
    assert answer.status == 202
    assert (await answer.json())["state"] == "cancelled"
    assert fake.deleted == [job]
    assert (await gcs_client.post(f"/runs/{run_id}/cancel")).status == 409
    assert await gcs_client.app[RUNS].track_remote_jobs() == 0


async def test_a_job_deleted_behind_the_services_back_loses_its_run(
    gcs_client: Client, fake: FakeBatch, bucket: str
) -> None:
    run_id, job = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r5")
    del fake.jobs[job]
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "lost"
    assert run["outcome"] == {
        "kind": "lost", "error": GONE_MESSAGE.format(noun="Cloud Batch job", job=job),
        "result": None, "trace": None, "exit_code": None,
    }  # fmt: skip
