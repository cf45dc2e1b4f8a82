"""The Batch client: off the event loop, one per app and closed at shutdown, its endpoint and
credentials, and the Batch settings."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.batch.fake import FakeBatch
from tests.batch.helpers import batch_settings, submit
from tests.gcp_jobs_helpers import (
    assert_the_loop_answers_while_the_api_holds,
    record_credentials_lookups,
)
from tests.helpers import Client, ClientFactory
from wtrunner.invokers import invoker_class
from wtrunner.invokers.batch import CloudBatchInvoker
from wtrunner.invokers.batch_client import (
    BatchClient,
    BatchNotConfiguredError,
    Endpoint,
    parse_endpoint,
)
from wtrunner.keys import RUNS
from wtrunner.settings import Settings, SettingsError, load_settings


@pytest.mark.timeout(60)  # a submission that blocked the loop would deadlock with the fake
async def test_the_event_loop_stays_responsive_while_submitting(
    client: Client, fake: FakeBatch
) -> None:
    await assert_the_loop_answers_while_the_api_holds(client, fake, submit)


async def test_one_client_is_kept_and_closed_at_shutdown(client: Client, fake: FakeBatch) -> None:
    context = client.app[RUNS].context
    assert "CloudBatchInvoker" not in context.clients  # nothing Google until a Batch run
    assert (await submit(client))[0] == 202
    kept = context.clients["CloudBatchInvoker"]
    assert isinstance(kept, BatchClient)
    api = await kept.client()
    assert (await submit(client))[0] == 202
    assert context.clients["CloudBatchInvoker"] is kept and await kept.client() is api
    channel = api.transport.grpc_channel

    await client.close()  # application shutdown
    assert context.clients == {}
    assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"google_cloud_project": ""}, "set GOOGLE_CLOUD_PROJECT"),
        ({"google_cloud_project": " ", "cloud_run_region": ""}, "set GOOGLE_CLOUD_PROJECT"),
        ({"batch_endpoint": "ftp://batch.example"}, "WTRUNNER_BATCH_ENDPOINT"),
    ],
)
async def test_missing_configuration_is_500_naming_the_variable(
    make_client: ClientFactory, fake: FakeBatch, settings: dict[str, str], named: str
) -> None:
    client = await make_client(**batch_settings(fake, **settings))
    status, body, _ = await submit(client)
    assert status == 500
    assert named in body["detail"]
    assert fake.requests == []


async def test_without_the_gcp_extra_the_error_names_it(
    client: Client, fake: FakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.batch_v1", None)
    status, body, _ = await submit(client)
    assert status == 500
    assert "wtrunner[gcp]" in body["detail"]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        ("", Endpoint("", plain=False)),
        ("http://127.0.0.1:8790", Endpoint("127.0.0.1:8790", plain=True)),
        ("https://batch.example.org", Endpoint("batch.example.org", plain=False)),
        ("batch.example.org:8443/", Endpoint("batch.example.org:8443", plain=False)),
    ],
)
def test_endpoint_setting(value: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(value) == endpoint


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1", "grpc://h:1", "https://h/v1", "http://", "h:port", "u@h:1"]
)
def test_unusable_endpoint_names_the_setting(value: str) -> None:
    with pytest.raises(BatchNotConfiguredError, match="WTRUNNER_BATCH_ENDPOINT"):
        parse_endpoint(value)


async def test_a_google_endpoint_uses_default_credentials_looked_up_off_the_loop(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = record_credentials_lookups(monkeypatch)
    settings = make_settings(batch_endpoint="https://batch.example.org:8443")
    batch = BatchClient(settings)
    api = await batch.client()  # nothing is contacted until a call is made
    try:
        assert api.api_endpoint == "batch.example.org:8443"
        assert [scopes for _, scopes in lookups] == [
            ["https://www.googleapis.com/auth/cloud-platform"]
        ]
        assert lookups[0][0] != threading.get_ident()  # not on the event loop's thread
    finally:
        await batch.close()


def test_registry_names_the_batch_invoker() -> None:
    assert invoker_class("CloudBatchInvoker") is CloudBatchInvoker
    assert not CloudBatchInvoker.waitable


async def test_a_plain_endpoint_needs_no_credentials(fake: FakeBatch, tmp_path: Path) -> None:
    # The autouse fixture makes any credentials lookup fail: the plain connection makes none.
    batch = BatchClient(Settings(cache_dir=tmp_path, batch_endpoint=fake.endpoint))
    try:
        api = await batch.client()
        assert api.transport.grpc_channel is not None
    finally:
        await batch.close()


def test_batch_settings_defaults_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert (defaults.batch_cpu_milli, defaults.batch_memory_mib) == (8000, 32768)
    assert defaults.batch_entrypoint_prefix == "pixi run -e default"
    assert not (defaults.batch_machine_type or defaults.batch_network or defaults.batch_subnetwork)
    assert defaults.batch_no_external_ip is False
    assert defaults.batch_poll_rate == 5
    for variable, value in {
        "WTRUNNER_BATCH_CPU_MILLI": "2000",
        "WTRUNNER_BATCH_MEMORY_MIB": "4096",
        "WTRUNNER_BATCH_MACHINE_TYPE": "e2-standard-2",
        "WTRUNNER_BATCH_NETWORK": "global/networks/batch",
        "WTRUNNER_BATCH_SUBNETWORK": "regions/europe-west1/subnetworks/batch",
        "WTRUNNER_BATCH_NO_EXTERNAL_IP": "true",
        "WTRUNNER_BATCH_POLL_RATE": "0.5",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert (settings.batch_cpu_milli, settings.batch_memory_mib) == (2000, 4096)
    assert settings.batch_machine_type == "e2-standard-2"
    assert settings.batch_network == "global/networks/batch"
    assert settings.batch_subnetwork == "regions/europe-west1/subnetworks/batch"
    assert settings.batch_no_external_ip is True
    assert settings.batch_poll_rate == 0.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WTRUNNER_BATCH_CPU_MILLI", "0"),
        ("WTRUNNER_BATCH_MEMORY_MIB", "lots"),
        ("WTRUNNER_BATCH_NO_EXTERNAL_IP", "perhaps"),
        ("WTRUNNER_BATCH_ENTRYPOINT_PREFIX", "pixi run -e 'default"),
        ("WTRUNNER_BATCH_POLL_RATE", "0"),
        ("WTRUNNER_BATCH_POLL_RATE", "inf"),
        ("WTRUNNER_BATCH_POLL_RATE", "fast"),
    ],
)
def test_invalid_batch_settings_stop_start_up_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
