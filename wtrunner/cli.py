"""The ``wtrunner`` command: ``serve``, ``settings`` and the tools built on the run path."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from .settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wtrunner", description="Run compiled workflow packages over HTTP and Pub/Sub."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default: WTRUNNER_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: WTRUNNER_PORT or PORT)")

    commands.add_parser("settings", help="print the effective settings (secrets masked)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wtrunner`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 2

    if args.command == "settings":
        print(json.dumps(settings.describe(), indent=2))
        return 0
    if args.command == "serve":
        from .logs import configure_logging
        from .server import serve

        configure_logging(settings.log_format)
        asyncio.run(serve(settings))
        return 0
    raise AssertionError(f"unknown command {args.command}")
