"""``wtrunner run``: one workflow run from the command line, through the service's run path."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import yaml
from aiohttp import web

from .app import create_app
from .errors import WtrunnerError
from .invokers import INVOKERS
from .keys import RUNS
from .run_request import build_run_request
from .settings import Settings


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
        try:
            request = build_run_request(
                settings,
                matchspec=args.matchspec,
                invoker_type=args.invoker_type,
                known_invokers=frozenset(INVOKERS),
                workflow_run_id="",
                params=params,
                execution_mode=args.execution_mode,
                mock_io=args.mock_io,
                results_url=args.results_url,
                timeout=args.timeout,
                locs={
                    "matchspec": ["matchspec"],
                    "invoker_type": ["--invoker-type"],
                    "results_url": ["--results-url"],
                    "data_connections_env_vars": ["env"],
                },
            )
            outcome = await app[RUNS].run(request)
        except WtrunnerError as exc:
            return exc.status, exc.body()
        return outcome.status, outcome.body()
