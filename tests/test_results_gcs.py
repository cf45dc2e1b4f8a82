"""result.json in a real object store: obstore against a GCS emulator (fake-gcs-server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from tests.gcs_helpers import gcs_options, upload_object, writable_gcs
from tests.helpers import ClientFactory, SettingsFactory
from tests.pubsub_helpers import push_body, run_command
from wtrunner.results import ResultsStore


@pytest.fixture
async def store_url(gcs: str) -> AsyncIterator[str]:
    async with writable_gcs(gcs) as url:
        yield url


async def _download(gcs: str, bucket: str, name: str) -> object:
    async with aiohttp.ClientSession() as session:
        answer = await session.get(
            f"{gcs}/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        )
        assert answer.status == 200, await answer.text()
        return json.loads(await answer.read())


async def test_results_are_read_only_when_written_during_the_run(
    gcs: str, bucket: str, store_url: str, make_settings: SettingsFactory
) -> None:
    store = ResultsStore(make_settings(object_store_options=json.dumps(gcs_options(store_url))))
    url = f"gs://{bucket}/runs/run-1"
    assert await store.marker(url) is None
    assert await store.read(url, None) is None

    first = {"result": {"animals": 3}, "error": None, "trace": None}
    await upload_object(gcs, bucket, "runs/run-1/result.json", first)
    assert await store.read(url, None) == first
    before = await store.marker(url)
    assert before is not None
    assert await store.read(url, before) is None, "unchanged since the marker: stale"

    second = {"result": [1, 2], "error": None, "trace": None}
    await upload_object(gcs, bucket, "runs/run-1/result.json", second)
    assert await store.read(url, before) == second


async def test_error_results_are_written_to_the_store(
    gcs: str, bucket: str, store_url: str, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(object_store_options=json.dumps(gcs_options(store_url)))
    command = run_command("wt-no-such-workflow", {}, f"gs://{bucket}/runs/7", run_id="gcs-7")
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert (await response.json())["status"] == "error"
    written = await _download(gcs, bucket, "runs/7/result.json")
    assert written["result"] is None  # type: ignore[index]
    assert "no package matches wt-no-such-workflow" in written["error"]  # type: ignore[index]


async def test_an_unreachable_store_is_503(make_client: ClientFactory, tmp_path: Path) -> None:
    options = gcs_options("http://127.0.0.1:9")
    options["gs"]["retry_config"] = {"max_retries": 0}
    client = await make_client(object_store_options=json.dumps(options))
    response = await client.post(
        "/",
        params={"matchspec": "wt-test-echo-workflow"},
        json={"params": {"echo": {}}, "execution_mode": "sequential", "mock_io": True,
              "results_url": "gs://bucket/runs/1"},
    )  # fmt: skip
    assert response.status == 503
    assert "cannot read result.json at gs://bucket/runs/1" in (await response.json())["detail"]
