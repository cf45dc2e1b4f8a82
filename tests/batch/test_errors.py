"""Bad requests are 422 and submit nothing; API errors are 502 or 503; transient ones are retried
with the same request id."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.batch.fake import FakeBatch
from tests.batch.helpers import submit
from tests.gcp_jobs_helpers import API_ERRORS
from tests.helpers import Client
from wtrunner.invokers import batch_client as batch_client_module
from wtrunner.invokers.batch_client import SubmitPolicy


@pytest.mark.parametrize(
    ("query", "body", "loc"),
    [
        ({"docker_image_uri": None}, {}, ["query", "docker_image_uri"]),
        ({"docker_image_uri": "  "}, {}, ["query", "docker_image_uri"]),
        ({"workflow_run_id": None}, {}, ["query", "workflow_run_id"]),
        ({"workflow_run_id": "   "}, {}, ["query", "workflow_run_id"]),
        ({"cpu_milli": "0"}, {}, ["query", "cpu_milli"]),
        ({"cpu_milli": "eight"}, {}, ["query", "cpu_milli"]),
        ({"memory_mib": "-1"}, {}, ["query", "memory_mib"]),
        ({"gpu_type": "nvidia-l4", "gpu_count": "0"}, {}, ["query", "gpu_count"]),
        ({"gpu_type": "nvidia-l4", "gpu_count": "1.5"}, {}, ["query", "gpu_count"]),
        ({"gpu_count": "2"}, {}, ["query", "gpu_count"]),
        ({}, {"results_url": "/data/results"}, ["body", "results_url"]),
        ({}, {"results_url": "Memory:///results"}, ["body", "results_url"]),  # for any invoker
    ],
)
async def test_bad_requests_are_422_and_submit_nothing(
    client: Client,
    fake: FakeBatch,
    query: dict[str, str | None],
    body: dict[str, Any],
    loc: list[str],
) -> None:
    status, answer, _ = await submit(client, query=query, **body)
    assert status == 422, answer
    assert [item["loc"] for item in answer["detail"]] == [loc]
    assert fake.requests == []


async def test_every_problem_is_reported_at_once(client: Client, fake: FakeBatch) -> None:
    status, answer, _ = await submit(
        client, query={"docker_image_uri": None, "workflow_run_id": "", "gpu_count": "1"}
    )
    assert status == 422
    locs = sorted(item["loc"][-1] for item in answer["detail"])
    assert locs == ["docker_image_uri", "gpu_count", "workflow_run_id"]
    assert fake.requests == []


# --- API errors and retries ----------------------------------------------------------------


@pytest.mark.parametrize(("code", "name"), API_ERRORS)
async def test_api_errors_are_502_naming_them_and_not_retried(
    client: Client, fake: FakeBatch, code: grpc.StatusCode, name: str
) -> None:
    fake.fail_next(code, "the API says no", times=5)
    status, body, headers = await submit(client)
    assert status == 502
    assert body["detail"].startswith("the Cloud Batch API refused job run-1-")
    assert body["detail"].endswith(f"{name}: the API says no")
    assert "X-Batch-Job" not in headers
    assert len(fake.requests) == 1


async def test_transient_errors_are_retried_with_the_same_request(
    client: Client, fake: FakeBatch
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)
    status, body, headers = await submit(client)
    assert (status, body) == (202, {"result": {}, "error": None, "trace": None})
    assert len(fake.requests) == 3
    assert len({(r.job_id, r.request_id) for r in fake.requests}) == 1
    assert list(fake.jobs) == [headers["X-Batch-Job"]]


async def test_a_lost_answer_is_retried_without_a_second_job(
    client: Client, fake: FakeBatch
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, after_doing=True)
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.requests) == 2
    assert list(fake.jobs) == [headers["X-Batch-Job"]]  # the retry found the first job


async def test_deadline_exceeded_is_retried(
    client: Client, fake: FakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        batch_client_module, "SUBMIT_POLICY", SubmitPolicy(first_delay=0.01, attempt_timeout=0.3)
    )
    fake.fail_next(grpc.StatusCode.OK, hang=True)  # never answers: the client's deadline passes
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.requests) == 2
    assert fake.requests[0].request_id == fake.requests[1].request_id
    assert list(fake.jobs) == [headers["X-Batch-Job"]]


async def test_unavailable_throughout_is_503(client: Client, fake: FakeBatch) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, "backend down", times=100_000)
    status, body, _ = await submit(client)
    assert status == 503
    tried = len(fake.requests)
    assert tried >= 2  # retried until the policy's deadline, then given up
    assert f"(tried {tried} times)" in body["detail"]
    assert "ServiceUnavailable (UNAVAILABLE): backend down" in body["detail"]
    assert fake.jobs == {}
