"""Cleanup contexts: the long-lived parts of the app, started in order and stopped in reverse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .channel import build_channel, examples_dir
from .environments import Environments
from .invokers import InvokerContext
from .keys import ENVIRONMENTS, METADATA, RUNS, SETTINGS
from .metadata import Metadata
from .processes import GroupReaper, become_subreaper
from .results import ResultsStore
from .runs import RunService, RunSlots
from .settings import SettingsError

log = logging.getLogger(__name__)


async def environments_context(app: web.Application) -> AsyncIterator[None]:
    """Resolution of MatchSpecs; with no channel configured, the built-in examples channel."""
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
        report = await build_channel([source], output)
        if report.built:
            log.info("built the examples channel in %s: %s", output, ", ".join(report.built))
        channels = [output.as_uri()]
    environments = Environments(settings, channels)
    await environments.start()
    app[ENVIRONMENTS] = environments
    yield


async def runs_context(app: web.Application) -> AsyncIterator[None]:
    """The run path: run slots, metadata cache, results store, and the reaper of leftovers.

    On shutdown, whatever finished workflows left running is killed and reaped.
    """
    settings = app[SETTINGS]
    become_subreaper()
    reaper = GroupReaper(settings.kill_grace_seconds)
    context = InvokerContext(settings, app[ENVIRONMENTS], reaper)
    app[METADATA] = Metadata(context)
    app[RUNS] = RunService(
        context,
        app[METADATA],
        ResultsStore(settings),
        RunSlots(settings.max_concurrent_runs, settings.max_queued_runs),
    )
    yield
    await context.aclose()
    await reaper.close()
