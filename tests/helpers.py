"""Helpers shared by the suites (no fixtures: those live in conftest.py).

``until`` is the one way tests wait for something to happen; the rest are the types of the shared
fixtures, the POST / helper and the live server's description.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine

from wtrunner.runstore import RunStore
from wtrunner.runstore.store import ServerDatabase, SQLiteDatabase
from wtrunner.settings import Settings

REPO = Path(__file__).resolve().parents[1]

POLL_SECONDS = 0.01

SettingsFactory = Callable[..., Settings]
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]

T = TypeVar("T")


async def until(condition: Callable[[], T | Awaitable[T]], timeout: float, what: str) -> T:
    """Poll ``condition`` (sync or async) until it returns something truthy, and return that.

    It is checked at once, then every few milliseconds; if it is still falsy ``timeout`` seconds
    later, the test fails with an AssertionError naming ``what`` was awaited.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


def run_files_left(work: Path) -> list[Path]:
    """What runs left in ``work`` (``<cache>/work``): everything but the emptied work dirs kept
    for reuse (``idle-*``, holding nothing but an empty ``params.json`` and an empty ``tmp/``)."""
    if not work.exists():
        return []
    return [entry for entry in work.iterdir() if not _emptied_work_dir(entry)]


def _emptied_work_dir(directory: Path) -> bool:
    if not directory.name.startswith("idle-") or directory.is_symlink():
        return False
    try:
        names = sorted(path.name for path in directory.iterdir())
        return (
            names == ["params.json", "tmp"]
            and (directory / "params.json").stat().st_size == 0
            and not any((directory / "tmp").iterdir())
        )
    except OSError:  # being renamed or removed meanwhile
        return False


async def post_run(
    client: Client,
    matchspec: str | None,
    params: dict[str, Any],
    results: Path | str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> tuple[int, Any]:
    """POST / with the usual body (sequential, mock I/O); returns (status, JSON body)."""
    payload: dict[str, Any] = {
        "params": params,
        "execution_mode": "sequential",
        "mock_io": True,
        "results_url": str(results),
        **body,
    }
    payload = {key: value for key, value in payload.items() if value is not None}
    all_query = {"matchspec": matchspec} if matchspec else {}
    all_query.update(query or {})
    response = await client.post("/", params=all_query, json=payload, headers=headers)
    assert response.content_type == "application/json"
    return response.status, await response.json()


_NOWHERE = "http://127.0.0.1:9"
NOWHERE_STORES = {
    "gs": {"base_url": _NOWHERE, "bearer_token": "test", "client_options": {"allow_http": True},
           "retry_config": {"max_retries": 0}},
    "s3": {"endpoint": _NOWHERE, "skip_signature": True, "region": "us-east-1",
           "client_options": {"allow_http": True}, "retry_config": {"max_retries": 0}},
}  # fmt: skip
"""Object store options that point every cloud store at a closed local port."""


@dataclass(frozen=True)
class LiveServer:
    """A real ``wtrunner serve`` process of the session: base URL, and the only results root."""

    url: str
    results_root: Path


def sync_engine(store: RunStore) -> Engine:
    """The engine whose statement events show what ``store`` sends, on either database."""
    database = store.database
    if isinstance(database, ServerDatabase):
        return database.engine.sync_engine
    assert isinstance(database, SQLiteDatabase)
    return database.engine
