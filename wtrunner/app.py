"""The application factory: cheap and pure; everything with I/O lives in cleanup contexts."""

from __future__ import annotations

from aiohttp import web

from .api.middlewares import (
    compression_middleware,
    error_middleware,
    metrics_middleware,
    request_id_middleware,
)
from .api.routes import setup_routes
from .contexts import (
    environments_context,
    loop_lag_context,
    pubsub_context,
    runs_context,
    stop_pulling,
)
from .keys import METRICS, READINESS, SETTINGS
from .metrics import Metrics
from .readiness import Readiness
from .settings import Settings


def create_app(settings: Settings) -> web.Application:
    """Build the wtrunner application for ``settings``; nothing starts until the app does.

    Start-up and shut-down order is the order of ``app.cleanup_ctx`` below (shut down in
    reverse). Shutdown first flips readiness to 503 (``on_shutdown``).
    """
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            compression_middleware,
            error_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[READINESS] = Readiness()
    app[METRICS] = Metrics()
    setup_routes(app)
    app.cleanup_ctx.append(loop_lag_context)  # first: it watches the app's whole life
    app.cleanup_ctx.append(environments_context)
    app.cleanup_ctx.append(runs_context)
    app.cleanup_ctx.append(pubsub_context)
    app.on_shutdown.append(_begin_shutdown)
    app.on_shutdown.append(stop_pulling)
    app.on_response_prepare.append(_cors_for_unrouted)
    return app


async def _begin_shutdown(app: web.Application) -> None:
    app[READINESS].begin_shutdown()


async def _cors_for_unrouted(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp-cors answers for registered routes only; a 404 or 405 must be readable by a
    # browser front end too, so those get the same headers here.
    origin = request.headers.get("Origin")
    if (
        origin
        and request.method != "OPTIONS"
        and "Access-Control-Allow-Origin" not in response.headers
    ):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers.add("Vary", "Origin")
