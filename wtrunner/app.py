"""The application factory: cheap and pure; everything with I/O lives in cleanup contexts."""

from __future__ import annotations

from aiohttp import web

from .api.access import AccessPolicy
from .api.auth import auth_middleware
from .api.browser_safety import browser_safety_middleware
from .api.cors import cors_for_unrouted
from .api.middlewares import (
    compression_middleware,
    error_middleware,
    metrics_middleware,
    request_id_middleware,
)
from .api.routes import OPERATIONS, setup_routes
from .contexts import (
    auth_context,
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
    policy = AccessPolicy(OPERATIONS, metrics_auth=settings.metrics_auth)
    # after the error middleware: their refusals (401, 403, 415, 421) are JSON answers too
    guards = [browser_safety_middleware(policy, settings)]
    if settings.auth_enabled or settings.pubsub_push_verified:
        guards.append(auth_middleware(policy))
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            compression_middleware,
            error_middleware,
            *guards,
        ],
    )
    app[SETTINGS] = settings
    app[READINESS] = Readiness()
    app[METRICS] = Metrics()
    setup_routes(app)
    app.cleanup_ctx.append(loop_lag_context)  # first: it watches the app's whole life
    app.cleanup_ctx.append(auth_context)
    app.cleanup_ctx.append(environments_context)
    app.cleanup_ctx.append(runs_context)
    app.cleanup_ctx.append(pubsub_context)
    app.on_shutdown.append(_begin_shutdown)
    app.on_shutdown.append(stop_pulling)
    app.on_response_prepare.append(cors_for_unrouted)
    return app


async def _begin_shutdown(app: web.Application) -> None:
    app[READINESS].begin_shutdown()
