"""API errors are 502 naming them, not retried; transient ones are retried with the policy of
Cloud Batch's calls, without ever starting a second execution for one run; unavailable to the
end is 503 (Pub/Sub: redelivered)."""

from __future__ import annotations

import grpc
import pytest

from tests.cloudrun.fake import FakeCloudRun
from tests.cloudrun.helpers import JOB, push_answer, submit
from tests.gcp_jobs_helpers import API_ERRORS, QUICK
from tests.helpers import Client
from wtrunner.invokers import batch_client, cloudrun_client
from wtrunner.invokers.gcp_api import CallPolicy
from wtrunner.keys import RUNS
from wtrunner.run_states import RunState


def test_the_retry_policy_is_cloud_batchs() -> None:
    assert CallPolicy() == batch_client.SubmitPolicy()
    assert cloudrun_client.CALL_POLICY == QUICK  # (shortened for these tests, as Batch's are)


@pytest.mark.parametrize(("code", "name"), API_ERRORS)
async def test_api_errors_are_502_naming_them_and_not_retried(
    client: Client, fake: FakeCloudRun, code: grpc.StatusCode, name: str
) -> None:
    fake.fail_next(code, "the API says no", times=5)
    status, body, headers = await submit(client, query={"workflow_run_id": "refused"})
    assert status == 502
    assert body["detail"] == f"the Cloud Run Jobs API refused RunJob {JOB}: {name}: the API says no"
    assert "X-Batch-Job" not in headers
    assert len(fake.run_requests) == 1
    assert fake.executions == {}
    await client.app[RUNS].settled()  # the run's end is written in the background
    run = await client.app[RUNS].store.find_latest(idempotency_key="run:refused")
    assert run is not None
    assert (run.state, run.job_name) == (RunState.FAILED, None)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_transient_errors_are_retried_then_the_run_is_submitted(
    client: Client, fake: FakeCloudRun, code: grpc.StatusCode
) -> None:
    fake.fail_next(code, times=2)
    status, body, headers = await submit(client)
    assert (status, body) == (202, {"result": {}, "error": None, "trace": None})
    assert len(fake.run_requests) == 3
    assert list(fake.executions) == [headers["X-Batch-Job"]]
    # before each retry the job's executions were searched for this run's marker
    assert fake.list_calls == [JOB, JOB]


async def test_a_lost_answer_is_retried_without_a_second_execution(
    client: Client, fake: FakeCloudRun
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, after_doing=True)  # started, answer lost
    fake.deploy(JOB.replace("wt-runs", "other-job"))
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.run_requests) == 1  # the retry found the execution it had started
    assert list(fake.executions) == [headers["X-Batch-Job"]]
    run = await (await client.get(f"/runs/{headers['X-Run-ID']}")).json()
    assert (run["state"], run["job_name"]) == ("submitted", headers["X-Batch-Job"])


async def test_the_marker_tells_this_runs_execution_from_the_jobs_others(
    client: Client, fake: FakeCloudRun
) -> None:
    for _ in range(3):  # other runs' executions of the same job
        assert (await submit(client))[0] == 202
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, after_doing=True)
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.run_requests) == 4
    assert len(fake.executions) == 4
    assert list(fake.executions)[-1] == headers["X-Batch-Job"]


async def test_a_hung_call_is_retried_after_its_deadline(
    client: Client, fake: FakeCloudRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        cloudrun_client, "CALL_POLICY", CallPolicy(first_delay=0.01, attempt_timeout=0.3)
    )
    fake.fail_next(grpc.StatusCode.OK, hang=True)  # never answers: the client's deadline passes
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.run_requests) == 2
    assert list(fake.executions) == [headers["X-Batch-Job"]]


async def test_unavailable_throughout_is_503(client: Client, fake: FakeCloudRun) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, "backend down", times=100_000)
    status, body, _ = await submit(client)
    assert status == 503
    tried = len(fake.run_requests)
    assert tried >= 2  # retried until the policy's deadline, then given up
    assert f"(tried {tried} times)" in body["detail"]
    assert "ServiceUnavailable (UNAVAILABLE): backend down" in body["detail"]
    assert fake.executions == {}


async def test_unavailable_throughout_leaves_a_pubsub_message_for_redelivery(
    client: Client, fake: FakeCloudRun
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, "backend down", times=100_000)
    status, body = await push_answer(client, "m-later", workflow_run_id="later")
    assert status == 503  # not acked: Pub/Sub delivers the message again
    assert "backend down" in body["detail"]
    assert fake.run_requests and fake.executions == {}
