"""What the suites of the Google Cloud back ends (``tests/batch``: Cloud Batch jobs,
``tests/cloudrun``: Cloud Run Jobs executions) share: the project they configure, the run they
submit, their fixtures' set-up and the checks they both make."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import google.auth
import grpc
import pytest
from google.auth.credentials import AnonymousCredentials

from tests.gcs_helpers import gcs_options, writable_gcs
from tests.grpc_fake import GrpcFake
from tests.helpers import Client
from wtrunner.invokers.gcp_api import CallPolicy
from wtrunner.keys import RUNS
from wtrunner.ratelimit import RateLimiter
from wtrunner.run_states import RunState

PROJECT = "test-project"
REGION = "europe-west1"
SECRET = "projects/test-project/secrets/er-password/versions/latest"
# Not in any channel: nothing is resolved locally, the image holds the workflow.
SPEC = "wt-patrols-workflow>=2.1"
PARAMS = {"workflow_details": {"name": "Patrols, week 1"}, "get_patrols": {"days": 7}}
RESULTS = "gs://results-bucket/runs/run-1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

QUICK = CallPolicy(first_delay=0.01, max_delay=0.02, deadline=0.5, attempt_timeout=10.0)
"""The retry policy of the API calls in these suites: that of production, shortened."""

API_ERRORS = [
    (grpc.StatusCode.PERMISSION_DENIED, "PermissionDenied (PERMISSION_DENIED)"),
    (grpc.StatusCode.INVALID_ARGUMENT, "InvalidArgument (INVALID_ARGUMENT)"),
    (grpc.StatusCode.NOT_FOUND, "NotFound (NOT_FOUND)"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "ResourceExhausted (RESOURCE_EXHAUSTED)"),
    (grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated (UNAUTHENTICATED)"),
]
"""Final API errors (never retried): (gRPC status, the name an error message gives it)."""

Submit = Callable[..., Coroutine[Any, Any, tuple[int, Any, Any]]]

_RUN_NUMBERS = itertools.count(1)


def refuse_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any look-up of Application Default Credentials fail the test (it would ask a
    metadata server)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test looked up Application Default Credentials")

    monkeypatch.setattr(google.auth, "default", refuse)


def record_credentials_lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[str]]]:
    """Answer look-ups of Application Default Credentials with anonymous ones for PROJECT; the
    list that records each look-up as (the id of the thread that made it, the scopes asked)."""
    lookups: list[tuple[int, list[str]]] = []

    def default(scopes: list[str]) -> tuple[Any, str]:
        lookups.append((threading.get_ident(), scopes))
        return AnonymousCredentials(), PROJECT  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", default)
    return lookups


def run_submitter(invoker_query: dict[str, str]) -> Submit:
    """The POST / helper of a suite whose runs name ``invoker_query`` (the invoker type and what
    it needs): ``submit(client, query=None, headers=None, **body)`` posts a run of SPEC with
    ``query`` over the invoker's parameters (None removes one) and ``body`` over the typical
    body; it answers (status, JSON body, response headers).

    Each call is a run of its own (``run-1-<n>``): the same run id again would name the run
    submitted before, and submit nothing.
    """

    async def submit(
        client: Client,
        query: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> tuple[int, Any, Any]:
        all_query: dict[str, str | None] = {
            "matchspec": SPEC,
            "workflow_run_id": f"run-1-{next(_RUN_NUMBERS)}",
            **invoker_query,
        }
        all_query.update(query or {})
        sent = {key: value for key, value in all_query.items() if value is not None}
        payload = {
            "params": PARAMS,
            "execution_mode": "sequential",
            "mock_io": False,
            "results_url": RESULTS,
            **body,
        }
        response = await client.post("/", params=sent, json=payload, headers=headers)
        assert response.content_type == "application/json"
        return response.status, await response.json(), response.headers

    return submit


@contextlib.asynccontextmanager
async def gcs_results(gcs: str) -> AsyncIterator[dict[str, Any]]:
    """Settings for an app whose gs:// results live in the GCS emulator at ``gcs`` (writable
    through its proxy) and whose reconciler's own rounds are an hour apart, so that each test
    drives its rounds itself."""
    async with writable_gcs(gcs) as store:
        yield {"object_store_options": json.dumps(gcs_options(store)), "batch_poll_seconds": 3600}


async def submitted_job(client: Client, submit: Submit, results_url: str) -> tuple[str, str]:
    """Submit a run with ``submit`` (a suite's POST / helper), its results to ``results_url``;
    (its run id, the name of the job or execution the API made of it), once checked that the
    run is recorded as submitted."""
    status, _, headers = await submit(client, results_url=results_url)
    assert status == 202
    run_id = headers["X-Run-ID"]
    record = await client.app[RUNS].get(run_id)
    assert record.state is RunState.SUBMITTED
    assert record.job_name is not None
    return run_id, record.job_name


async def assert_the_loop_answers_while_the_api_holds(
    client: Client, fake: GrpcFake, submit: Submit
) -> None:
    """Check that the app answers at once while ``fake`` holds the answer to a run's submission
    (made with ``submit``), and that the submission ends (202) once it is released."""
    fake.hold()
    submission = asyncio.create_task(submit(client))
    await fake.wait_for_request()
    for _ in range(20):
        started = time.perf_counter()
        response = await client.get("/")
        assert response.status == 200
        assert time.perf_counter() - started < 0.5
    assert not submission.done()  # the run is still being submitted
    fake.release()
    status, _, _ = await asyncio.wait_for(submission, 10)
    assert status == 202


async def run_json(client: Client, run_id: str) -> dict[str, Any]:
    """GET /runs/{run_id}: the run as the API shows it."""
    response = await client.get(f"/runs/{run_id}")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


class VirtualClock:
    """A clock for a rate limiter that only moves when the limiter sleeps on it: the sleeps
    are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The time now, in seconds."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record ``delay`` and move the clock on by it."""
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)  # let the others run, as a real sleep would

    def limiter(self, rate: float) -> RateLimiter:
        """A rate limiter of ``rate`` calls a second that waits on this clock."""
        return RateLimiter(rate, clock=self.clock, sleep=self.sleep)
