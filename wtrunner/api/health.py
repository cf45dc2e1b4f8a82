"""Operational endpoints: the spec's ``GET /``, Kubernetes' ``/livez`` and ``/readyz``, and
Prometheus' ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from ..keys import METRICS, READINESS
from ..metrics import metrics_response


async def health(request: web.Request) -> web.Response:
    """``GET /``: the process is up (the spec's health check)."""
    return web.json_response({"status": "ok"})


async def livez(request: web.Request) -> web.Response:
    """``GET /livez``: the event loop answers; Kubernetes restarts the pod when it does not."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 while the process takes work, 503 once shutdown has begun.

    Background components (the Pub/Sub consumer) report here without failing readiness.
    """
    readiness = request.app[READINESS]
    body = {
        "status": "shutting down" if readiness.shutting_down else "ok",
        "components": readiness.components,
    }
    return web.json_response(body, status=503 if readiness.shutting_down else 200)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus metrics in the text exposition format."""
    return metrics_response(request.app[METRICS])
