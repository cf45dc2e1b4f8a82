"""Fixtures shared by every suite: clean settings per test and a client for the real app.

Fixtures only: the helpers and the types named here live in tests/helpers.py."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.auth_helpers import LocalIssuer
from tests.gcs_helpers import fake_gcs
from tests.helpers import (
    REPO,
    Client,
    ClientFactory,
    LiveServer,
    SettingsFactory,
)
from tests.postgres import fresh_database, fresh_schema, session_database
from tests.processes import running_server
from tests.pubsub_helpers import Emulator, Subscription, start_emulator
from wtrunner.app import create_app
from wtrunner.channel import build_channel
from wtrunner.settings import Settings
from wtrunner.tracing import build_tracer_provider, instrument_server


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own WTRUNNER_* or ECOSCOPE_* variables must not change what tests see."""
    for name in list(os.environ):
        if name.startswith(("WTRUNNER_", "ECOSCOPE_WORKFLOWS_", "WT_")) and name not in (
            "WTRUNNER_REQUIRE_EMULATORS",
            "WTRUNNER_REQUIRE_POSTGRES",
            "WTRUNNER_REQUIRE_BROWSER",
        ):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PORT", raising=False)


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real local channel: examples/ and tests/workflows/ packed into .conda packages."""
    output = tmp_path_factory.mktemp("channel")
    asyncio.run(build_channel([REPO / "examples", REPO / "tests" / "workflows"], output))
    return output


@pytest.fixture
def make_settings(tmp_path: Path, channel: Path) -> SettingsFactory:
    """Build Settings for a test: its own cache dir, the session channel, the rest as given."""

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("cache_dir", tmp_path / "cache")
        overrides.setdefault("channels", (channel.as_uri(),))
        return Settings(**overrides)

    return factory


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: SettingsFactory,
) -> ClientFactory:
    """Start the real application from the factory and return a test client for it."""

    async def factory(
        settings: Settings | None = None, app: web.Application | None = None, **overrides: Any
    ) -> Client:
        if app is None:
            app = create_app(settings or make_settings(**overrides))
        return await aiohttp_client(app)

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> Client:
    """The app on the session channel, with a short kill grace period."""
    return await make_client(kill_grace_seconds=0.5)


@pytest.fixture
async def local_issuer(
    aiohttp_server: Callable[[web.Application], Awaitable[Any]],
) -> LocalIssuer:
    """An OIDC issuer on 127.0.0.1 (discovery and JWKS) with one RS256 key published."""
    issuer = LocalIssuer()
    server = await aiohttp_server(issuer.app)
    issuer.url = f"http://{server.host}:{server.port}"
    issuer.add_key()
    return issuer


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """Google's Pub/Sub emulator for the session (skipped, or failed in CI, when missing)."""
    emulator = start_emulator(tmp_path_factory.mktemp("pubsub"))
    yield emulator
    emulator.stop()


@pytest.fixture
async def subscription(pubsub_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Subscription:
    """A fresh topic and subscription; clients in this test find the emulator."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    created = Subscription(pubsub_emulator)
    await created.create()
    return created


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty database on the PostgreSQL server of the tests, dropped afterwards
    (skipped, or failed with WTRUNNER_REQUIRE_POSTGRES=1, when the server is not reachable).
    Creating one takes a few hundred milliseconds: a test that only needs a fresh store takes
    ``postgres_store_url``."""
    async with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of the session on the PostgreSQL server of the tests, which holds the stores
    of ``postgres_store_url``; dropped at the end."""
    with session_database() as name:
        yield name


@pytest.fixture
async def postgres_store_url(postgres_database: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL run store: a new role and its own schema in the database of
    the session (see tests.postgres.fresh_schema), dropped afterwards."""
    async with fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh run store: a new SQLite file, or a new schema in PostgreSQL (marked
    slow: only the full suite runs it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'wtrunner.db'}"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


@pytest.fixture(scope="session", autouse=True)
def spans() -> InMemorySpanExporter:
    """Every span of the session, in memory: the tracer provider and the aiohttp server
    instrumentation are process-global, so they are set up once, before any app exists."""
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Settings(), exporters=[exporter])
    trace.set_tracer_provider(provider)
    instrument_server(provider)
    return exporter


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Iterator[LiveServer]:
    """``wtrunner serve`` on the session channel, results confined to a temporary root."""
    with running_server(tmp_path_factory.mktemp("live-server"), channel) as server:
        yield server


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    """A GCS emulator (fake-gcs-server) for the module: its base URL (a fresh bucket per test
    keeps tests apart)."""
    with fake_gcs() as url:
        yield url


@pytest.fixture
async def bucket(gcs: str) -> str:
    """A fresh bucket in the GCS emulator: its name."""
    name = f"results-{uuid.uuid4().hex[:12]}"
    async with aiohttp.ClientSession() as session:
        created = await session.post(f"{gcs}/storage/v1/b?project=test", json={"name": name})
        assert created.status == 200, await created.text()
    return name
