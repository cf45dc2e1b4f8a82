"""Cloud Run runs as records: the reconciler follows each execution to its end (GetExecution),
cancel cancels it (CancelExecution).

The real google-cloud-run client talks gRPC to the fake; the result.json of a succeeded
execution is read from a GCS emulator, as a job elsewhere would have written it.
"""

from __future__ import annotations

import grpc
import pytest

from tests.cloudrun.fake import FakeCloudRun, Reason, State
from tests.cloudrun.helpers import DIGEST, push, submit
from tests.gcp_jobs_helpers import run_json, submitted_job
from tests.gcs_helpers import upload_object
from tests.helpers import Client
from wtrunner.job_tracking import GONE_MESSAGE
from wtrunner.keys import RUNS
from wtrunner.run_states import RunState


async def test_an_execution_is_followed_from_pending_to_running_to_succeeded(
    gcs_client: Client, fake: FakeCloudRun, gcs: str, bucket: str
) -> None:
    runs = gcs_client.app[RUNS]
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r1")

    assert await runs.track_remote_jobs() == 1
    assert (await run_json(gcs_client, run_id))["state"] == "submitted"  # pending at Cloud Run
    assert fake.get_calls == [execution]

    fake.start_tasks(execution)
    await runs.track_remote_jobs()
    running = await run_json(gcs_client, run_id)
    assert running["state"] == "running" and running["started_at"] is not None

    document = {"result": {"patrols": 7}, "error": None, "trace": None}
    await upload_object(gcs, bucket, "runs/r1/result.json", document)
    fake.complete(execution, State.CONDITION_SUCCEEDED)
    await runs.track_remote_jobs()
    done = await run_json(gcs_client, run_id)
    assert done["state"] == "succeeded"
    assert done["outcome"] == {**document, "kind": "ok", "exit_code": 0}
    assert done["finished_at"] is not None

    calls = len(fake.get_calls)
    assert await runs.track_remote_jobs() == 0, "a finished run is not polled again"
    assert len(fake.get_calls) == calls


async def test_a_failed_execution_fails_its_run_with_cloud_runs_reason(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r2")
    fake.start_tasks(execution)
    reason = "Task wt-runs-abcde-task0 failed with message: The container exited with an error."
    fake.complete(execution, State.CONDITION_FAILED, Reason.NON_ZERO_EXIT_CODE, reason)
    await gcs_client.app[RUNS].track_remote_jobs()
    failed = await run_json(gcs_client, run_id)
    assert failed["state"] == "failed"
    assert failed["outcome"]["kind"] == "crash"
    assert failed["outcome"]["error"] == f"The Cloud Run execution failed: {reason}"


async def test_a_workflow_error_in_result_json_fails_its_run(
    gcs_client: Client, fake: FakeCloudRun, gcs: str, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r3")
    document = {"result": None, "error": "no patrols in range", "trace": "Traceback ..."}
    await upload_object(gcs, bucket, "runs/r3/result.json", document)
    fake.complete(execution, State.CONDITION_SUCCEEDED)
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "failed"
    assert run["outcome"] == {**document, "kind": "workflow_error", "exit_code": 0}


async def test_an_execution_that_succeeded_without_a_result_fails_its_run(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r4")
    fake.complete(execution, State.CONDITION_SUCCEEDED)
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "failed"
    assert "The Cloud Run execution succeeded but wrote no result.json" in run["outcome"]["error"]


async def test_cancel_cancels_the_execution(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    runs = gcs_client.app[RUNS]
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r5")
    fake.start_tasks(execution)
    await runs.track_remote_jobs()

    answer = await gcs_client.post(f"/runs/{run_id}/cancel")
    assert answer.status == 202
    assert (await answer.json())["state"] == "cancelled"
    assert [request.name for request in fake.cancel_requests] == [execution]
    assert fake.finish_cancellations() == [execution]  # Cloud Run was cancelling it
    assert (await gcs_client.post(f"/runs/{run_id}/cancel")).status == 409
    assert await runs.track_remote_jobs() == 0
    assert len(fake.cancel_requests) == 1


async def test_cancel_of_an_execution_that_ended_meanwhile_still_ends_the_run(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r6")
    fake.complete(execution, State.CONDITION_SUCCEEDED)  # not yet seen by the reconciler
    answer = await gcs_client.post(f"/runs/{run_id}/cancel")
    assert answer.status == 202  # Cloud Run said FAILED_PRECONDITION: nothing left to stop
    assert (await answer.json())["state"] == "cancelled"
    assert len(fake.cancel_requests) == 1


async def test_a_cancel_the_api_refuses_is_502_and_the_run_goes_on(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, _ = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r7")
    fake.fail_next(grpc.StatusCode.PERMISSION_DENIED, "no run.executions.cancel",
                   method="CancelExecution")  # fmt: skip
    answer = await gcs_client.post(f"/runs/{run_id}/cancel")
    assert answer.status == 502
    assert (
        "PermissionDenied (PERMISSION_DENIED): no run.executions.cancel"
        in (await answer.json())["detail"]
    )
    assert (await run_json(gcs_client, run_id))["state"] == "submitted"


async def test_an_execution_cancelled_elsewhere_cancels_its_run(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r8")
    fake.start_tasks(execution)
    fake.complete(execution, State.CONDITION_FAILED, Reason.CANCELLED, "cancelled by a user")
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "cancelled"
    assert run["outcome"]["kind"] == "cancelled"


async def test_an_execution_deleted_behind_the_services_back_loses_its_run(
    gcs_client: Client, fake: FakeCloudRun, bucket: str
) -> None:
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r9")
    fake.delete(execution)
    await gcs_client.app[RUNS].track_remote_jobs()
    run = await run_json(gcs_client, run_id)
    assert run["state"] == "lost"
    assert run["outcome"]["error"] == GONE_MESSAGE.format(noun="Cloud Run execution", job=execution)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED])
async def test_a_look_up_that_fails_leaves_the_run_for_the_next_round(
    gcs_client: Client, fake: FakeCloudRun, bucket: str, code: grpc.StatusCode
) -> None:
    runs = gcs_client.app[RUNS]
    run_id, execution = await submitted_job(gcs_client, submit, f"gs://{bucket}/runs/r10")
    fake.start_tasks(execution)
    fake.fail_next(code, times=100, method="GetExecution")
    await runs.track_remote_jobs()
    assert (await run_json(gcs_client, run_id))["state"] == "submitted"
    fake.clear_failures()
    await runs.track_remote_jobs()
    assert (await run_json(gcs_client, run_id))["state"] == "running"


async def test_a_sandbox_run_whose_results_went_to_an_archive_succeeds_without_a_result(
    gcs_client: Client, fake: FakeCloudRun
) -> None:
    answer = await push(
        gcs_client, "m-sandbox", workflow_run_id="sandboxed", results_url="file:///results",
        environment_tar_url="https://storage.example/env.tar", environment_tar_digest=DIGEST,
        results_upload_url="https://storage.example/out",
    )  # fmt: skip
    assert answer == {"status": "processed"}
    [execution] = fake.executions
    fake.complete(execution, State.CONDITION_SUCCEEDED)
    await gcs_client.app[RUNS].settled()  # the run is recorded submitted in the background
    await gcs_client.app[RUNS].track_remote_jobs()
    record = await gcs_client.app[RUNS].store.find_latest(idempotency_key="run:sandboxed")
    assert record is not None
    assert record.state is RunState.SUCCEEDED
    assert record.outcome is not None
    assert (record.outcome.kind, record.outcome.result, record.outcome.error) == ("ok", None, None)
