"""Run the application as a server with a graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import errno
import gc
import importlib.metadata
import logging
import signal
import socket

from aiohttp import web

from .app import create_app
from .gcp import MissingExtraError, import_gcp
from .keys import READINESS
from .logs import AccessLogger
from .settings import (
    DEFAULT_CLOUD_RUN_REGION,
    Settings,
    SettingsError,
    check_local_channels,
    is_loopback,
)
from .tracing import configure_tracer

log = logging.getLogger(__name__)

CHOOSE_PORT = "choose another with --port or WTRUNNER_PORT"


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully.

    Start-up: the settings are checked (local channels, the ``gcp`` extra when a Pub/Sub
    subscription is set), then the listening sockets are bound, and only then does anything
    start — tracing, the cleanup contexts (examples channel, run slots, the Pub/Sub pull
    consumer) — so a port in use stops start-up with a SettingsError before any of it.
    With an exporter configured, tracing is set up before the application exists, as the
    aiohttp instrumentation requires.

    Shutdown: readiness flips to 503, listeners close, in-flight requests get
    ``WTRUNNER_SHUTDOWN_TIMEOUT`` seconds, then the cleanup contexts run in reverse order.
    """
    check_local_channels(settings.channels)
    _check_pubsub_extra(settings)
    sockets = await bind_sockets(settings.host, settings.port)
    try:
        await _serve_on(settings, sockets)
    finally:
        for sock in sockets:
            sock.close()
    log.info("shutdown complete")


async def _serve_on(settings: Settings, sockets: list[socket.socket]) -> None:
    _warn_about_defaults(settings)
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
        for sock in sockets:
            await web.SockSite(runner, sock).start()
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


async def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind (not yet listen on) one TCP socket per address of ``host``, as aiohttp would.

    ``host`` empty means every interface. Listening starts when the sockets are handed to the
    running application; until then connections are refused, as before any bind. Raises
    SettingsError with one sentence when the port is in use or the address cannot be used.
    """
    loop = asyncio.get_running_loop()
    where = f"{host}:{port}" if host else f"port {port} on every interface"
    try:
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise SettingsError(
            f"cannot listen on {host!r}: {exc.strerror}; choose another address with --host or "
            "WTRUNNER_HOST"
        ) from None
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # as asyncio does: an IPv6 socket must not also claim the IPv4 address
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise SettingsError(_bind_failure(exc, host, port, where)) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_failure(exc: OSError, host: str, port: int, where: str) -> str:
    on = f" on {host}" if host else ""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port}{on} is already in use: {CHOOSE_PORT}"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port}{on}: {CHOOSE_PORT} (1024 or above)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {where}: {host} is not an address of this machine; choose another "
            "with --host or WTRUNNER_HOST"
        )
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _check_pubsub_extra(settings: Settings) -> None:
    """A Pub/Sub subscription needs the gcp extra: say how to install it, before starting."""
    if not settings.pubsub_subscription:
        return
    try:
        import_gcp("gcloud.aio.pubsub", "The Pub/Sub pull consumer")
    except MissingExtraError:
        raise SettingsError(
            "WTRUNNER_PUBSUB_SUBSCRIPTION is set, but the Pub/Sub pull consumer needs the "
            "Google Cloud client libraries of the gcp extra: pip install 'wtrunner[gcp]' "
            "(or unset WTRUNNER_PUBSUB_SUBSCRIPTION)"
        ) from None


def cloud_batch_usable(settings: Settings) -> bool:
    """Whether this server could submit Cloud Batch jobs: the gcp extra's Batch client is
    installed and ``GOOGLE_CLOUD_PROJECT`` is set (found without importing Google's libraries)."""
    if not settings.google_cloud_project.strip():
        return False
    try:
        importlib.metadata.distribution("google-cloud-batch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def exposure_warning(settings: Settings) -> str | None:
    """The warning ``serve`` logs when it listens beyond loopback with authentication off;
    None when it does not."""
    if settings.auth_enabled or is_loopback(settings.host):
        return None
    return (
        f"listening on {settings.host or 'every interface'} with authentication off: anyone "
        "who can reach this port can run workflows and read every run; set "
        "WTRUNNER_AUTH_TOKENS_FILE or WTRUNNER_OIDC_ISSUERS (README: Security)"
    )


def _warn_about_defaults(settings: Settings) -> None:
    exposure = exposure_warning(settings)
    if exposure is not None:
        log.warning("%s", exposure)
    if settings.cloud_run_region_defaulted and cloud_batch_usable(settings):
        log.warning(
            "CLOUD_RUN_REGION is not set: Cloud Batch jobs are submitted to %s (the earlier "
            "implementation's default); set CLOUD_RUN_REGION to choose the region",
            DEFAULT_CLOUD_RUN_REGION,
        )


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()
