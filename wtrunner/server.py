"""Run the application as a server with a graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from .app import create_app
from .keys import READINESS
from .logs import AccessLogger
from .settings import Settings
from .tracing import configure_tracer

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully.

    Shutdown: readiness flips to 503, listeners close, in-flight requests get
    ``WTRUNNER_SHUTDOWN_TIMEOUT`` seconds, then the cleanup contexts run in reverse order.
    With an exporter configured, tracing is set up first: the aiohttp instrumentation must be in
    place before the application exists.
    """
    provider = configure_tracer(settings) if settings.otel_exporter else None
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        shutdown_timeout=settings.shutdown_timeout,
        handle_signals=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    try:
        await runner.setup()
        # What start-up made lives as long as the process: keep it out of the collector's
        # full passes, which otherwise pause the loop for tens of ms under load.
        gc.freeze()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        for address in runner.addresses:
            log.info("wtrunner listening on http://%s:%s", *address[:2])
        await stop.wait()
        log.info(
            "shutting down: no new work, in-flight requests get %ss", settings.shutdown_timeout
        )
        app[READINESS].begin_shutdown()
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if provider is not None:
            provider.shutdown()  # flushes the batched spans
    log.info("shutdown complete")


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()
