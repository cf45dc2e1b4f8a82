"""``wtrunner runs list|show|logs|cancel``: a running service's recorded runs, from a shell.

A thin program over :class:`wtrunner.client.WtrunnerClient`: readable tables by default,
the API's JSON with ``--json``. Exit status 0 on success, 1 when the service answered an error
or could not be reached (the message on stderr), 2 on bad usage. A service with authentication
on is called with the token in ``WTRUNNER_TOKEN`` (a variable: no process list shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .run_states import RunState

if TYPE_CHECKING:  # the client (aiohttp, the API's models) is imported only when used
    from .client import WtrunnerClient
    from .runstore import RunRecord

__all__ = ["add_parser", "default_url", "main"]

DEFAULT_PORT = 8080
TOKEN_VARIABLE = "WTRUNNER_TOKEN"
DEFAULT_LIST_LIMIT = 20
_MAX_PAGE = 500
_STREAMS = ("stdout", "stderr", "both")


class UsageError(Exception):
    """The command line or its environment cannot be used (exit status 2)."""


def default_url(environ: dict[str, str] | None = None) -> str:
    """``http://127.0.0.1:<WTRUNNER_PORT, else 8080>``: where ``wtrunner serve`` listens by
    default on this machine."""
    env = os.environ if environ is None else environ
    port = env.get("WTRUNNER_PORT", "").strip() or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"WTRUNNER_PORT={port!r} is not a port number; give --url instead")
    return f"http://127.0.0.1:{int(port)}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _since(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or time: {text!r} (e.g. 2024-06-01 or 2024-06-01T12:00Z)"
        ) from None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``runs`` and its subcommands on the ``wtrunner`` command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help=f"the service's base URL (default: http://127.0.0.1:<WTRUNNER_PORT or "
        f"{DEFAULT_PORT}>)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the API's JSON")

    runs = commands.add_parser(
        "runs",
        help="the runs a running service recorded: list, show, logs, cancel",
        description="Inspect and cancel the runs a running wtrunner service recorded. "
        "Exit status: 0 on success, 1 when the service answered an error or could not be "
        "reached, 2 on bad usage.",
        epilog=f"A service with authentication on is called with the bearer token in "
        f"{TOKEN_VARIABLE}.",
    )
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")

    listing = actions.add_parser(
        "list", parents=[common, as_json], help="recorded runs, newest first"
    )
    listing.add_argument(
        "--state", choices=[state.value for state in RunState], help="only runs in this state"
    )
    listing.add_argument("--package", help="only runs of this workflow package")
    listing.add_argument("--workflow-run-id", help="only runs with this workflow_run_id")
    listing.add_argument(
        "--since", type=_since, help="only runs created at or after this ISO 8601 time"
    )
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIST_LIMIT,
        help=f"show at most this many runs (default {DEFAULT_LIST_LIMIT})",
    )

    show = actions.add_parser("show", parents=[common, as_json], help="one run in full")
    show.add_argument("run_id", metavar="ID")

    logs = actions.add_parser("logs", parents=[common], help="a run's output")
    logs.add_argument("run_id", metavar="ID")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing output until the run ends"
    )
    logs.add_argument("--stream", choices=_STREAMS, default="both", help="default: both")
    logs.add_argument(
        "--tail",
        type=_non_negative_int,
        metavar="N",
        help="only the last N lines of each stream (with --follow: then new output)",
    )

    cancel = actions.add_parser("cancel", parents=[common, as_json], help="end a run")
    cancel.add_argument("run_id", metavar="ID")


def main(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run the ``runs`` subcommand parsed into ``args``; returns the exit status."""
    import aiohttp

    from .client import WtrunnerClientError

    out = stdout or sys.stdout
    try:
        url = args.url or default_url()
        return asyncio.run(_main(args, url, out))
    except UsageError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 2
    except WtrunnerClientError as exc:
        print(f"wtrunner: {exc}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        print(f"wtrunner: cannot reach the service at {url}: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace, url: str, out: TextIO) -> int:
    from .client import WtrunnerClient

    try:
        client = WtrunnerClient(url, token=os.environ.get(TOKEN_VARIABLE, "").strip() or None)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None
    async with client:
        return await _dispatch(client, args, out)


async def _dispatch(client: WtrunnerClient, args: argparse.Namespace, out: TextIO) -> int:
    command = args.runs_command
    if command == "list":
        records = []
        async for record in client.iter_runs(
            state=args.state,
            package=args.package,
            workflow_run_id=args.workflow_run_id,
            since=args.since,
            page_size=min(args.limit, _MAX_PAGE),
        ):
            records.append(record)
            if len(records) >= args.limit:
                break
        if args.json:
            _print_json([record.model_dump(mode="json") for record in records], out)
        elif records:
            out.write(format_table(records))
        else:
            print("no runs", file=sys.stderr)
        return 0
    if command == "show":
        record = await client.get(args.run_id)
        if args.json:
            _print_json(record.model_dump(mode="json"), out)
        else:
            out.write(format_run(record))
        return 0
    if command == "cancel":
        record = await client.cancel(args.run_id)
        if args.json:
            _print_json(record.model_dump(mode="json"), out)
        else:
            out.write(format_table([record]))
        return 0
    if command == "logs":
        if args.follow:
            chunks = client.follow_logs(args.run_id, stream=args.stream, tail=args.tail)
            async for chunk in chunks:
                out.write(chunk)
                out.flush()
        else:
            out.write(await client.logs(args.run_id, stream=args.stream, tail=args.tail))
        out.flush()
        return 0
    raise AssertionError(f"unknown runs command {command}")


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2) + "\n")


# -- readable output ---------------------------------------------------------------------------

COLUMNS = ("ID", "STATE", "PACKAGE", "WORKFLOW RUN ID", "CREATED", "DURATION")


def format_table(records: Sequence[RunRecord], now: dt.datetime | None = None) -> str:
    """Runs as an aligned table: id, state, package, workflow_run_id, created, duration."""
    rows = [COLUMNS] + [
        (
            record.id,
            record.state.value,
            record.package,
            record.workflow_run_id or "-",
            format_time(record.created_at),
            format_duration(record, now),
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def format_run(record: RunRecord, now: dt.datetime | None = None) -> str:
    """One run in full, one field a line (the result as indented JSON, the trace verbatim)."""
    resolved = record.resolved
    fields: list[tuple[str, str | None]] = [
        ("id", record.id),
        ("state", record.state.value + (" (cancel requested)" if _cancelling(record) else "")),
        ("package", record.package),
        ("matchspec", record.matchspec),
        (
            "resolved",
            f"{resolved.name} {resolved.version} {resolved.build}"
            + (f" from {resolved.channel}" if resolved.channel else "")
            if resolved
            else None,
        ),
        ("workflow_run_id", record.workflow_run_id or None),
        ("attempt", str(record.attempt) if record.attempt != 1 else None),
        ("invoker", record.invoker_type),
        ("front door", record.front_door),
        ("created", format_time(record.created_at)),
        ("started", format_time(record.started_at) if record.started_at else None),
        ("finished", format_time(record.finished_at) if record.finished_at else None),
        ("duration", format_duration(record, now)),
        ("results_url", record.results_url),
        ("replica", record.replica),
        ("job", record.job_name),
        ("data connections", ", ".join(record.data_connection_names) or None),
    ]
    outcome = record.outcome
    if outcome is not None:
        exit_code = f" (exit code {outcome.exit_code})" if outcome.exit_code is not None else ""
        fields.append(("outcome", outcome.kind + exit_code))
        fields.append(("error", outcome.error))
    shown = [(name, value) for name, value in fields if value]
    width = max(len(name) for name, _ in shown)
    lines = [f"{name.ljust(width)}  {value}" for name, value in shown]
    if outcome is not None and outcome.result is not None:
        lines.append("result:")
        lines += ["  " + line for line in json.dumps(outcome.result, indent=2).splitlines()]
    if outcome is not None and outcome.trace:
        lines.append("trace:")
        lines += ["  " + line for line in outcome.trace.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def _cancelling(record: RunRecord) -> bool:
    return record.cancel_requested and not record.state.final


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def format_time(value: dt.datetime) -> str:
    """A record's time in UTC, to the second: ``2024-06-01 12:03:04Z``."""
    return _utc(value).strftime("%Y-%m-%d %H:%M:%SZ")


def format_duration(record: RunRecord, now: dt.datetime | None = None) -> str:
    """How long the run ran (``-`` before it started); a run still going counts up to ``now``
    and ends with ``…``."""
    if record.started_at is None:
        return "-"
    if record.finished_at is not None:
        end, going = _utc(record.finished_at), ""
    else:
        end = _utc(now or dt.datetime.now(dt.timezone.utc))
        going = "" if record.state.final else "…"
    seconds = max((end - _utc(record.started_at)).total_seconds(), 0.0)
    return _seconds(seconds) + going


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
