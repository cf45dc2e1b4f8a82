"""Logs of a run kept by another replica: ``GET /runs/{id}/logs`` is passed on to it.

A run's output is written to the disk of the replica that runs it (next to its process, no
per-line database traffic); the others reach it through the address it advertises in its
heartbeat (``WTRUNNER_ADVERTISE_URL``). A passed-on request carries :data:`PROXIED_HEADER`, so
it is never passed on again.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ..errors import ServiceUnavailableError
from ..runstore import RunRecord, RunStore

PROXIED_HEADER = "X-Wtrunner-Proxied"
CONNECT_TIMEOUT_SECONDS = 5.0
# passed on as they are (authentication); nothing else of the client's request is
FORWARDED_HEADERS = ("Authorization",)


async def proxy_logs(
    request: web.Request, store: RunStore, record: RunRecord
) -> web.StreamResponse:
    """Answer ``request`` (a logs request for ``record``) with what the owning replica
    answers, streamed as it comes; 503 when that replica cannot be reached."""
    owner = await store.replica(record.replica)
    if owner is None or not owner.advertise_url:
        raise ServiceUnavailableError(
            f"the logs of run {record.id} are kept by replica {record.replica}, "
            "which is not known to the run store any more"
        )
    url = f"{owner.advertise_url.rstrip('/')}/runs/{record.id}/logs"
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    headers[PROXIED_HEADER] = "1"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, params=request.query, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailableError(
                f"the logs of run {record.id} are kept by replica {record.replica} "
                f"({owner.advertise_url}), which could not be reached: {type(exc).__name__}"
            ) from None
        async with upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError):
                pass  # the owner went away mid-answer: what came is all there is
            await response.write_eof()
            return response
