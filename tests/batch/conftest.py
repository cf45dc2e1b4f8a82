"""Fixtures of the Batch suites: no credentials lookup, quick retries, the fake and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import google.auth
import pytest

from tests.batch.fake import FakeBatch
from tests.batch.helpers import batch_settings
from tests.helpers import Client, ClientFactory
from wtrunner.invokers import batch_client as batch_client_module
from wtrunner.invokers.batch_client import SubmitPolicy


@pytest.fixture(autouse=True)
def _no_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may look up Google credentials (that would ask a metadata server)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test looked up Application Default Credentials")

    monkeypatch.setattr(google.auth, "default", refuse)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        batch_client_module,
        "SUBMIT_POLICY",
        SubmitPolicy(first_delay=0.01, max_delay=0.02, deadline=0.5, attempt_timeout=10.0),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatch]:
    """The fake Batch API, listening on 127.0.0.1."""
    server = FakeBatch()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(make_client: ClientFactory, fake: FakeBatch) -> Client:
    """The real app, configured for Cloud Batch against the fake."""
    return await make_client(**batch_settings(fake))
