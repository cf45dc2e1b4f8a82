"""Fixtures of the Cloud Run suites: no credentials lookup, quick retries, the fake (with the
job deployed) and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cloudrun.fake import FakeCloudRun
from tests.cloudrun.helpers import JOB, cloud_run_settings
from tests.gcp_jobs_helpers import QUICK, gcs_results, refuse_credentials_lookup
from tests.helpers import Client, ClientFactory
from wtrunner.invokers import cloudrun_client as cloudrun_client_module


@pytest.fixture(autouse=True)
def _no_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may look up Google credentials (that would ask a metadata server)."""
    refuse_credentials_lookup(monkeypatch)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudrun_client_module, "CALL_POLICY", QUICK)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudRun]:
    """The fake Cloud Run API on 127.0.0.1, with the job ``wt-runs`` deployed."""
    async with FakeCloudRun() as server:
        server.deploy(JOB, env={"JOB_LEVEL": "kept"}, args=["--default-arg"])
        yield server


@pytest.fixture
async def client(make_client: ClientFactory, fake: FakeCloudRun) -> Client:
    """The real app, configured for Cloud Run Jobs against the fake."""
    return await make_client(**cloud_run_settings(fake))


@pytest.fixture
async def gcs_client(
    make_client: ClientFactory, fake: FakeCloudRun, gcs: str
) -> AsyncIterator[Client]:
    """The app for Cloud Run Jobs, its gs:// results in the GCS emulator; the reconciler's own
    rounds are an hour apart, so each test drives its rounds itself."""
    async with gcs_results(gcs) as overrides:
        yield await make_client(**cloud_run_settings(fake, **overrides))
