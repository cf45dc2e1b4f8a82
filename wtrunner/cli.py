"""The ``wtrunner`` command: ``serve``, ``settings`` and the tools built on the run path."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import runs_cli
from .contract import EXECUTION_MODES
from .processes import wtrunner_command
from .settings import SettingsError, check_local_channels, load_settings
from .version import __version__

__all__ = ["main", "run", "wtrunner_command"]

SETTINGS_HELP = (
    "Every other setting is an environment variable (WTRUNNER_CHANNELS, WTRUNNER_PREFIXES, "
    "WTRUNNER_PUBSUB_SUBSCRIPTION, ...): `wtrunner settings` prints the effective values, and "
    "the Configuration table of wtrunner's README says what each one means."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wtrunner", description="Run compiled workflow packages over HTTP and Pub/Sub."
    )
    parser.add_argument("--version", action="version", version=f"wtrunner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service (and the Pub/Sub pull consumer when a subscription "
        "is set) until SIGTERM or SIGINT.",
        epilog=SETTINGS_HELP,
    )
    serve.add_argument("--host", help="listen address (default: WTRUNNER_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="listen port (default: WTRUNNER_PORT, else PORT, else 8080)"
    )

    commands.add_parser("settings", help="print the effective settings (secrets masked)")

    run = commands.add_parser(
        "run", help="run a workflow once through the service's run path; print its result JSON"
    )
    run.add_argument("matchspec", help="conda MatchSpec of the workflow package")
    run.add_argument("--params", required=True, type=Path, help="params file (YAML or JSON)")
    run.add_argument(
        "--results-url",
        required=True,
        help="directory or URL (file://, gs://, s3://, ...) for result.json; a relative path "
        "is relative to the current directory",
    )
    run.add_argument(
        "--channel",
        action="append",
        dest="channels",
        metavar="CHANNEL",
        help="a channel to find the package in: local path, file:// or https URL (repeatable; "
        "replaces WTRUNNER_CHANNELS for this run)",
    )
    run.add_argument("--timeout", type=float, help="seconds before the run is ended")
    run.add_argument("--mock-io", action=argparse.BooleanOptionalAction, default=False)
    run.add_argument("--execution-mode", choices=EXECUTION_MODES, default="sequential")
    run.add_argument("--invoker-type", default="BlockingLocalSubprocessInvoker")

    channel = commands.add_parser("channel", help="local conda channels of workflow packages")
    channel_commands = channel.add_subparsers(dest="channel_command", required=True)
    build = channel_commands.add_parser(
        "build", help="pack workflow source dirs into .conda packages and index the channel"
    )
    build.add_argument(
        "sources", nargs="+", type=Path, help="workflow source dirs, or dirs holding them"
    )
    build.add_argument("--output", required=True, type=Path, help="the channel directory")

    token = commands.add_parser(
        "token",
        help="make a client token: its WTRUNNER_AUTH_TOKENS_FILE line on stdout, the token on "
        "stderr",
        description="Make a random token for a client. Its line for WTRUNNER_AUTH_TOKENS_FILE "
        "(name:sha256[:scopes]) goes to stdout, e.g. `wtrunner token ci >> tokens.txt`; the "
        "token itself to stderr, once: it is stored nowhere.",
    )
    token.add_argument("name", help="the client's name (recorded on its runs, logged)")
    token.add_argument(
        "--scopes", help="comma-separated: run, read, admin (default: run,read, written as no "
        "scopes)"
    )  # fmt: skip

    runs_cli.add_parser(commands)
    return parser


def run() -> NoReturn:
    """The ``wtrunner`` program: :func:`main`, then leave without interpreter finalization.

    py-rattler's asyncio calls leave tokio worker threads behind that can crash a finalizing
    interpreter (a known PyO3 race: exit status -11 or -6 after all the work was done). Once
    output and logs are flushed there is nothing left to finalize, so the process exits directly.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wtrunner`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "runs":  # a client of a running service: no settings of its own
        return runs_cli.main(args)
    if args.command == "token":
        return _new_token(args.name, args.scopes)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if args.command == "run":
        # One run never consumes the Pub/Sub subscription a server of the same
        # environment may be configured with.
        overrides["pubsub_subscription"] = ""
        if args.channels:
            overrides["channels"] = tuple(_cli_channel(entry) for entry in args.channels)
        args.results_url = _absolute_results_url(args.results_url)
    try:
        settings = load_settings(**overrides)
        if args.command == "run":
            check_local_channels(
                settings.channels, "--channel" if args.channels else "WTRUNNER_CHANNELS"
            )
    except SettingsError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 2

    if args.command == "run":
        from .logs import configure_logging
        from .oneshot import run_once

        configure_logging(settings.log_format, project=settings.google_cloud_project)
        try:
            status, body = asyncio.run(run_once(settings, args))
        except SettingsError as exc:
            print(f"wtrunner: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(body, indent=2))
        return 0 if status < 400 else 1
    if args.command == "channel":
        return _channel_build(args.sources, args.output)
    if args.command == "settings":
        print(json.dumps(settings.describe(), indent=2))
        return 0
    if args.command == "serve":
        from .logs import configure_logging
        from .server import serve

        configure_logging(settings.log_format, project=settings.google_cloud_project)
        try:
            asyncio.run(serve(settings))
        except SettingsError as exc:
            print(f"wtrunner: {exc}", file=sys.stderr)
            return 2
        return 0
    raise AssertionError(f"unknown command {args.command}")


def _new_token(name: str, scopes: str | None) -> int:
    from .auth.tokens import new_token, token_line
    from .scopes import parse_scopes

    token = new_token()
    try:
        line = token_line(name, token, parse_scopes(scopes.split(",")) if scopes else None)
    except ValueError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 2
    print(line)
    print(f"token of {name} (stored nowhere: give it to the client now): {token}", file=sys.stderr)
    return 0


def _cli_channel(entry: str) -> str:
    """A ``--channel`` value: an existing local directory becomes its absolute path (even
    without ``./``); URLs and channel names stay as they are."""
    if "://" not in entry and Path(entry).expanduser().is_dir():
        return str(Path(entry).expanduser().absolute())
    return entry


def _absolute_results_url(url: str) -> str:
    """A relative results path, made absolute against the current directory; URLs unchanged."""
    if not url or "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def _channel_build(sources: list[Path], output: Path) -> int:
    from .channel import ChannelBuildError, build_channel

    try:
        report = asyncio.run(build_channel(sources, output))
    except ChannelBuildError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 2
    for filename in report.built:
        print(f"built     {filename}")
    for filename in report.unchanged:
        print(f"unchanged {filename}")
    for filename in report.removed:
        print(f"removed   {filename}")
    print(f"channel: {output.resolve().as_uri()}")
    return 0
