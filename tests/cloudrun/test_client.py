"""The Cloud Run client: off the event loop, one per app and closed at shutdown, its endpoint and
credentials, the rate limit of its look-ups, and the Cloud Run settings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import google.auth
import grpc
import pytest
from google.cloud import run_v2

from tests.cloudrun.fake import FakeCloudRun
from tests.cloudrun.helpers import JOB, submit
from tests.gcp_jobs_helpers import (
    QUICK,
    VirtualClock,
    assert_the_loop_answers_while_the_api_holds,
    record_credentials_lookups,
)
from tests.helpers import Client
from wtrunner.invokers.cloudrun_client import (
    CloudRunClient,
    CloudRunNotConfiguredError,
    parse_endpoint,
)
from wtrunner.invokers.gcp_api import Endpoint
from wtrunner.keys import RUNS
from wtrunner.settings import Settings, SettingsError, load_settings


@pytest.mark.timeout(60)  # a submission that blocked the loop would deadlock with the fake
async def test_the_event_loop_stays_responsive_while_starting(
    client: Client, fake: FakeCloudRun
) -> None:
    await assert_the_loop_answers_while_the_api_holds(client, fake, submit)


async def test_one_client_is_kept_and_closed_at_shutdown(
    client: Client, fake: FakeCloudRun
) -> None:
    context = client.app[RUNS].context
    assert "CloudRunJobsSandboxInvoker" not in context.clients  # nothing Google until a run
    assert (await submit(client))[0] == 202
    kept = context.clients["CloudRunJobsSandboxInvoker"]
    assert isinstance(kept, CloudRunClient)
    apis = await kept.clients()
    assert (await submit(client))[0] == 202
    assert context.clients["CloudRunJobsSandboxInvoker"] is kept and await kept.clients() is apis
    channels = [apis.jobs.transport.grpc_channel, apis.executions.transport.grpc_channel]

    await client.close()  # application shutdown
    assert context.clients == {}
    assert [c.get_state() for c in channels] == [grpc.ChannelConnectivity.SHUTDOWN] * 2
    assert len(fake.run_requests) == 2


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        ("", Endpoint("", plain=False)),
        ("http://127.0.0.1:8790", Endpoint("127.0.0.1:8790", plain=True)),
        ("https://run.example.org", Endpoint("run.example.org", plain=False)),
    ],
)
def test_endpoint_setting(value: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(value) == endpoint


@pytest.mark.parametrize("value", ["http://127.0.0.1", "grpc://h:1", "https://h/v2", "u@h:1"])
def test_unusable_endpoint_names_the_setting(value: str) -> None:
    with pytest.raises(CloudRunNotConfiguredError, match="WTRUNNER_CLOUD_RUN_ENDPOINT"):
        parse_endpoint(value)


async def test_a_google_endpoint_uses_default_credentials_looked_up_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = record_credentials_lookups(monkeypatch)
    cloud_run = CloudRunClient(
        Settings(cache_dir=tmp_path, cloud_run_endpoint="https://run.example.org:8443")
    )
    apis = await cloud_run.clients()  # nothing is contacted until a call is made
    try:
        # (the transports' host: older clients, the lowest supported among them, have no
        # api_endpoint property)
        hosts = {apis.jobs.transport._host, apis.executions.transport._host}
        assert hosts == {"run.example.org:8443"}
        assert [scopes for _, scopes in lookups] == [
            ["https://www.googleapis.com/auth/cloud-platform"]
        ]
        assert lookups[0][0] != threading.get_ident()  # not on the event loop's thread
    finally:
        await cloud_run.close()


async def test_without_credentials_the_error_names_cloud_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def default(scopes: list[str]) -> Any:
        raise google.auth.exceptions.DefaultCredentialsError("no credentials here")

    monkeypatch.setattr(google.auth, "default", default)
    cloud_run = CloudRunClient(Settings(cache_dir=tmp_path))
    with pytest.raises(CloudRunNotConfiguredError, match="Cloud Run Jobs needs Google credentials"):
        await cloud_run.clients()


# --- the rate limit of look-ups ----------------------------------------------------------------


@pytest.fixture
def virtual() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def cloud_run(
    fake: FakeCloudRun, tmp_path: Path, virtual: VirtualClock
) -> AsyncIterator[CloudRunClient]:
    """A CloudRunClient against the fake, its poll limit (5 a second) on the virtual clock."""
    limiter = virtual.limiter(5)
    settings = Settings(cache_dir=tmp_path, cloud_run_endpoint=fake.endpoint)
    client = CloudRunClient(settings, QUICK, poll_limiter=limiter)
    yield client
    await client.close()


async def test_look_ups_and_their_retries_wait_for_the_rate_limit(
    cloud_run: CloudRunClient, fake: FakeCloudRun, virtual: VirtualClock
) -> None:
    # Started by this client, not through an app, whose reconciler would look them up too.
    names = []
    for marker in ("run-1", "run-2", "run-3"):
        execution = await cloud_run.run_job(run_v2.RunJobRequest(name=JOB), marker)
        names.append(execution.name)
    assert virtual.sleeps == []  # starting does not wait for the poll limit
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, method="GetExecution")
    executions = await asyncio.gather(*(cloud_run.get_execution(name) for name in names))
    assert [execution.name for execution in executions] == names
    assert len(fake.get_calls) == 4  # one retried
    # 4 look-ups at 5 a second: the last one no sooner than 3/5 s after the first.
    assert virtual.sleeps == pytest.approx([0.2] * 3)


async def test_starting_and_cancelling_do_not_wait_for_the_poll_limit(
    client: Client, cloud_run: CloudRunClient, fake: FakeCloudRun, virtual: VirtualClock
) -> None:
    status, _, headers = await submit(client)
    assert status == 202
    assert await cloud_run.cancel_execution(headers["X-Batch-Job"])
    assert virtual.sleeps == []


# --- settings ----------------------------------------------------------------------------------


def test_cloud_run_settings_defaults_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert (defaults.cloud_run_job, defaults.cloud_run_endpoint) == ("", "")
    assert defaults.cloud_run_entrypoint_prefix == "pixi run -e default"
    assert defaults.cloud_run_poll_rate == 5
    for variable, value in {
        "WTRUNNER_CLOUD_RUN_JOB": " projects/p-1/locations/europe-west1/jobs/wt-runs ",
        "WTRUNNER_CLOUD_RUN_ENDPOINT": "http://127.0.0.1:8790",
        "WTRUNNER_CLOUD_RUN_ENTRYPOINT_PREFIX": "",
        "WTRUNNER_CLOUD_RUN_POLL_RATE": "0.5",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.cloud_run_job == "projects/p-1/locations/europe-west1/jobs/wt-runs"
    assert settings.cloud_run_endpoint == "http://127.0.0.1:8790"
    assert settings.cloud_run_entrypoint_prefix == ""
    assert settings.cloud_run_poll_rate == 0.5
    assert CloudRunClient(settings).poll_limiter.rate == 0.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WTRUNNER_CLOUD_RUN_JOB", "Runs_Job"),
        ("WTRUNNER_CLOUD_RUN_JOB", "projects/p/locations/l/jobs/-bad"),
        ("WTRUNNER_CLOUD_RUN_JOB", "projects/p/jobs/wt-runs"),
        ("WTRUNNER_CLOUD_RUN_ENTRYPOINT_PREFIX", "pixi run -e 'default"),
        ("WTRUNNER_CLOUD_RUN_POLL_RATE", "0"),
        ("WTRUNNER_CLOUD_RUN_POLL_RATE", "inf"),
    ],
)
def test_invalid_cloud_run_settings_stop_start_up_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
