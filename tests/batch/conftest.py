"""Fixtures of the Batch suites: no credentials lookup, quick retries, the fake and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.batch.fake import FakeBatch
from tests.batch.helpers import batch_settings
from tests.gcp_jobs_helpers import QUICK, gcs_results, refuse_credentials_lookup
from tests.helpers import Client, ClientFactory
from wtrunner.invokers import batch_client as batch_client_module


@pytest.fixture(autouse=True)
def _no_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may look up Google credentials (that would ask a metadata server)."""
    refuse_credentials_lookup(monkeypatch)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_client_module, "SUBMIT_POLICY", QUICK)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatch]:
    """The fake Batch API, listening on 127.0.0.1."""
    async with FakeBatch() as server:
        yield server


@pytest.fixture
async def client(make_client: ClientFactory, fake: FakeBatch) -> Client:
    """The real app, configured for Cloud Batch against the fake."""
    return await make_client(**batch_settings(fake))


@pytest.fixture
async def gcs_client(
    make_client: ClientFactory, fake: FakeBatch, gcs: str
) -> AsyncIterator[Client]:
    """The app for Cloud Batch, its gs:// results in the GCS emulator; the reconciler's own
    rounds are an hour apart, so each test drives its rounds itself."""
    async with gcs_results(gcs) as overrides:
        yield await make_client(**batch_settings(fake, **overrides))
