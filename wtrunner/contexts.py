"""Cleanup contexts: the long-lived parts of the app, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio.to_thread
from aiohttp import web

from .auth.authenticator import Authenticator
from .backoff import Backoff
from .catalogue import Catalogue
from .cgroups import RunCgroups
from .channel import examples_dir
from .environments import Environments
from .errors import ServiceUnavailableError
from .gcp import MissingExtraError, import_gcp
from .invokers import InvokerContext
from .keys import (
    AUTH,
    CATALOGUE,
    ENVIRONMENTS,
    METADATA,
    METRICS,
    PUBSUB,
    PUBSUB_CONSUMER,
    READINESS,
    RUNS,
    SETTINGS,
)
from .looplag import LoopLagMonitor
from .metadata import Metadata
from .processes import GroupReaper, become_subreaper, wtrunner_command
from .pubsub.consumer import PullConsumer
from .pubsub.processing import PubSubRunner
from .readiness import Readiness
from .results import ResultsStore
from .runs import RunService, RunSlots
from .runstore import RunStore
from .settings import Settings, SettingsError

log = logging.getLogger(__name__)


async def environments_context(app: web.Application) -> AsyncIterator[None]:
    """Resolution of MatchSpecs and the catalogue of workflows; with no channel configured, the
    built-in examples channel."""
    settings = app[SETTINGS]
    channels = list(settings.channels)
    if not channels:
        source = examples_dir()
        if source is None:
            raise SettingsError(
                "WTRUNNER_CHANNELS is empty and the example workflows (examples/ of a source "
                "checkout) are not available: set WTRUNNER_CHANNELS"
            )
        output = settings.cache_dir / "examples-channel"
        await _build_examples_channel(source, output)
        channels = [output.as_uri()]
    environments = Environments(settings, channels, app[METRICS])
    await environments.start()
    app[ENVIRONMENTS] = environments
    app[CATALOGUE] = Catalogue(settings, environments.channels, environments.prefixes)
    yield


async def _build_examples_channel(source: Path, output: Path) -> None:
    """``wtrunner channel build`` in a child process: packing and indexing stay out of the
    server's memory and event loop (and unchanged sources build nothing)."""
    process = await asyncio.create_subprocess_exec(
        *wtrunner_command(), "channel", "build", str(source), "--output", str(output),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise SettingsError(
            f"building the examples channel failed: {stderr.decode(errors='replace').strip()}"
        )
    built = [line.split()[-1] for line in stdout.decode().splitlines() if line.startswith("built")]
    if built:
        log.info("built the examples channel in %s: %s", output, ", ".join(built))


async def runs_context(app: web.Application) -> AsyncIterator[None]:
    """The run path: run store, run slots, metadata cache, results store, and the reaper.

    At start-up the store's migrations run, and the runs this replica left unfinished (the
    server stopped while they ran) become ``lost``, their process groups ended. In the
    background, finished runs older than the retention are pruned and the runs-by-state gauge
    is kept fresh. On shutdown, whatever finished workflows left running is killed and reaped.
    Where the server may, its runs get cgroup leaves under a directory made here (and removed
    on shutdown, with what servers that died left in theirs).
    """
    settings = app[SETTINGS]
    become_subreaper()
    store = await RunStore.open(
        settings.effective_database_url, pool_size=settings.database_pool_size
    )
    cgroups = await anyio.to_thread.run_sync(RunCgroups.create, settings)
    reaper = GroupReaper(settings.kill_grace_seconds, cgroups)
    context = InvokerContext(settings, app[ENVIRONMENTS], reaper)
    app[METADATA] = Metadata(context)
    slots = RunSlots(settings.max_concurrent_runs, settings.max_queued_runs)
    app[METRICS].watch_slots(lambda: slots.in_use, lambda: slots.waiting)
    runs = RunService(
        context, app[METADATA], ResultsStore(settings), slots, app[METRICS], store,
        settings.replica_id,
    )  # fmt: skip
    app[RUNS] = runs
    previous = await anyio.to_thread.run_sync(_take_over_cache, settings)
    await runs.recover(previous)
    await _beat(runs, settings, app[READINESS])  # known alive before the first run is taken
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    background = [
        loop.create_task(_maintain_runs(runs, settings, stop)),
        loop.create_task(_heartbeats(runs, settings, app[READINESS], stop)),
        loop.create_task(_track_remote_jobs(runs, settings, stop)),
    ]
    try:
        yield
    finally:
        # let a store query in progress finish: a cancelled one can leave its connection to
        # be collected after the loop has closed (seen with SQLAlchemy 2.0.30)
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await runs.aclose()
        await context.aclose()
        await reaper.close()
        await store.close()


MAINTENANCE_SECONDS = 5.0
PRUNE_EVERY = 720  # maintenance rounds: an hour
REPLICA_FILE = "replica"  # in the cache dir: the id of the replica that used it last


def _take_over_cache(settings: Settings) -> str | None:
    """Record this replica as the cache dir's user; the id of the one before (its runs'
    logs and processes were here), None on a fresh cache."""
    path = settings.cache_dir / REPLICA_FILE
    try:
        previous: str | None = path.read_text().strip() or None
    except FileNotFoundError:
        previous = None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings.replica_id + "\n")
    return previous


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Pause the background loop for ``seconds`` or until ``stop`` is set; whether it is."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _beat(runs: RunService, settings: Settings, readiness: Readiness) -> None:
    """One heartbeat round; ``/readyz`` shows whether the run store answered."""
    timeout = dt.timedelta(seconds=settings.replica_timeout_seconds)
    try:
        await runs.heartbeat(settings.effective_advertise_url, timeout)
    except ServiceUnavailableError as exc:
        readiness.report("database", status="unreachable", error=str(exc.detail))
        raise
    readiness.report("database", status="ok", replica=runs.replica)


async def _heartbeats(
    runs: RunService, settings: Settings, readiness: Readiness, stop: asyncio.Event
) -> None:
    """Every ``WTRUNNER_HEARTBEAT_SECONDS``: this replica's heartbeat, dead replicas' runs
    lost, cancels from other replicas delivered; sooner, with backoff, while the run store
    cannot be reached; until ``stop`` is set."""
    retry = Backoff(first=0.5, maximum=settings.heartbeat_seconds)
    pause = settings.heartbeat_seconds
    while not stop.is_set():
        if await _stopped_within(stop, pause):
            return
        try:
            await _beat(runs, settings, readiness)
        except Exception as exc:
            pause = retry.next_delay()
            if not isinstance(exc, ServiceUnavailableError):
                log.exception("replica heartbeat failed; trying again in %.1f s", pause)
            else:
                log.warning("replica heartbeat: %s; trying again in %.1f s", exc, pause)
        else:
            retry.reset()
            pause = settings.heartbeat_seconds


async def _track_remote_jobs(runs: RunService, settings: Settings, stop: asyncio.Event) -> None:
    """Every ``WTRUNNER_BATCH_POLL_SECONDS``: a round of the reconciler of Cloud Batch jobs and
    Cloud Run executions."""
    while not stop.is_set():
        try:
            await runs.track_remote_jobs()
        except Exception:
            log.exception("following remote jobs failed; trying again later")
        await _stopped_within(stop, settings.batch_poll_seconds)


async def _maintain_runs(runs: RunService, settings: Settings, stop: asyncio.Event) -> None:
    """Refresh the runs-by-state gauge; prune runs past the retention once an hour; until
    ``stop`` is set."""
    rounds = 0
    while not stop.is_set():
        try:
            if rounds % PRUNE_EVERY == 0:
                await runs.prune(dt.timedelta(days=settings.run_retention_days))
            await runs.refresh_counts()
        except Exception:
            log.exception("run store maintenance failed; trying again later")
        rounds += 1
        await _stopped_within(stop, MAINTENANCE_SECONDS)


async def pubsub_context(app: web.Application) -> AsyncIterator[None]:
    """Pub/Sub: the push handler's runner, and the pull consumer when a subscription is set.

    Shutdown: the consumer stops pulling when shutdown begins (``on_shutdown``); here it drains
    and nacks what is left, before the run path it uses is torn down.
    """
    settings = app[SETTINGS]
    runs = app[RUNS]
    app[PUBSUB] = runner = PubSubRunner(settings, runs, runs.results)
    if not settings.pubsub_subscription:
        yield
        return
    try:
        pubsub = import_gcp("gcloud.aio.pubsub", "The Pub/Sub pull consumer")
    except MissingExtraError as exc:
        raise SettingsError(f"WTRUNNER_PUBSUB_SUBSCRIPTION is set, but {exc}") from None
    consumer = PullConsumer(
        settings, runner, runs.slots, app[READINESS], pubsub.SubscriberClient(), app[METRICS]
    )
    app[PUBSUB_CONSUMER] = consumer
    consumer.start()
    log.info("pulling RunWorkflow messages from %s", settings.pubsub_subscription)
    try:
        yield
    finally:
        await consumer.close()


async def stop_pulling(app: web.Application) -> None:
    """``on_shutdown``: the consumer pulls no more; its runs start their drain time."""
    consumer = app.get(PUBSUB_CONSUMER)
    if consumer is not None:
        consumer.begin_shutdown()


async def loop_lag_context(app: web.Application) -> AsyncIterator[None]:
    """The event-loop lag monitor, for the app's whole life (it is the first context).

    Its histogram is ``wtrunner_event_loop_lag_seconds``; a stall over 100 ms is logged with
    the stack that was running. Shutdown cancels its task and joins its watchdog thread.
    """
    monitor = LoopLagMonitor(app[METRICS].event_loop_lag.observe)
    monitor.start()
    try:
        yield
    finally:
        await monitor.close()


async def auth_context(app: web.Application) -> AsyncIterator[None]:
    """Who may call: the token file, read now (a SettingsError stops start-up when it cannot
    be used), and for OIDC issuers and Pub/Sub push verification the HTTP session that
    fetches their signing keys."""
    settings = app[SETTINGS]
    fetches_keys = bool(settings.oidc_issuers) or settings.pubsub_push_verified
    session = aiohttp.ClientSession(trust_env=True) if fetches_keys else None
    try:
        authenticator = Authenticator(settings, session)
        authenticator.load()
        app[AUTH] = authenticator
        yield
    finally:
        if session is not None:
            await session.close()
