"""``wtrunner run``: one workflow run from the command line, through the service's run path."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import yaml
from aiohttp import web

from .api.runs import outcome_status
from .app import create_app
from .errors import Location, RequestValidationError, WtrunnerError
from .keys import RUNS
from .run_request import RunInput, build_run_request
from .settings import Settings

# Where the command line holds what the run core names plainly.
_FLAGS = {"invoker_type": "--invoker-type", "results_url": "--results-url", "timeout": "--timeout"}


@contextlib.asynccontextmanager
async def started_app(settings: Settings) -> AsyncIterator[web.Application]:
    """The application with its cleanup contexts started, but no HTTP listener."""
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def run_once(settings: Settings, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Run the workflow ``args`` describe; the HTTP status and body ``POST /`` would answer."""
    try:
        params = yaml.safe_load(args.params.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return 422, {"detail": f"cannot read params from {args.params}: {exc}"}
    if not isinstance(params, dict):
        return 422, {"detail": f"{args.params} must hold a mapping of task id to kwargs"}
    async with started_app(settings) as app:
        given = RunInput(
            matchspec=args.matchspec,
            invoker_type=args.invoker_type,
            params=params,
            execution_mode=args.execution_mode,
            mock_io=args.mock_io,
            results_url=args.results_url,
            timeout=args.timeout,
        )
        try:
            try:
                outcome = await app[RUNS].run(build_run_request(settings, given))
            except RequestValidationError as exc:
                raise exc.placed(_place_flag) from None
        except WtrunnerError as exc:
            return exc.status, exc.body()
        return outcome_status(outcome), outcome.body()


def _place_flag(loc: Location) -> Location:
    name = str(loc[0]) if loc else ""
    return [_FLAGS.get(name, name), *loc[1:]]
