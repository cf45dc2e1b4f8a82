"""Replicas: Pub/Sub throughput of one server against two sharing one PostgreSQL run store.

    python bench/replicas.py [--messages M] [--repeat N] [--slots S] [--postgres URL]

Starts Google's Pub/Sub emulator and, per setting (1 replica, then 2), a fresh database on the
PostgreSQL server (``--postgres``: a URL of its maintenance database, default
postgresql://postgres@127.0.0.1:5432/postgres) and that many ``wtrunner serve`` processes
pulling one subscription, each with ``--slots`` run slots. Per repeat it publishes M
RunWorkflow commands of the trivial workflow at once and times until every result.json exists.
Prints runs per second for each and their ratio (never pass/fail); writes bench/replicas.json.

On one machine the replicas share its cores: the ratio shows what a second replica costs or
gains there (claims, heartbeats, two consumers on one subscription), not what a second node
would add.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from common import (
    add_quiet_arguments,
    bench_setup,
    client_session,
    guarded,
    server,
    show,
    show_value,
    summary,
    write_summary,
)
from pubsub import command, messages
from sqlalchemy.engine import make_url

from tests.pubsub_helpers import Emulator, Subscription, emulator_launcher


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> Any:
    """A new database on the server of ``admin_url`` for one setting: its URL; dropped after."""
    admin = make_url(admin_url)
    name = f"wtrunner_bench_{secrets.token_hex(4)}"
    connect = {"host": admin.host, "port": admin.port or 5432, "user": admin.username,
               "password": admin.password, "database": admin.database}  # fmt: skip
    connection = await asyncpg.connect(**connect)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(**connect)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


async def throughput(
    subscription: Subscription, servers: list[Any], results: Path, count: int, limit: float
) -> float:
    """Publish ``count`` commands at once; seconds until every result.json exists and every
    message is acked by one of ``servers``."""
    async with client_session() as session:
        acked = sum([(await messages(s, session))["acked"] for s in servers]) + count
        directories = [results / uuid.uuid4().hex for _ in range(count)]
        started = time.perf_counter()
        await subscription.publish(*(command(directory) for directory in directories))
        waiting = [directory / "result.json" for directory in directories]
        while waiting:
            waiting = [path for path in waiting if not path.exists()]
            if time.perf_counter() - started > limit:
                raise RuntimeError(f"{len(waiting)} of {count} runs had no result in {limit:g}s")
            await asyncio.sleep(0.005)
        written = time.perf_counter() - started
        while sum([(await messages(s, session))["acked"] for s in servers]) < acked:
            if time.perf_counter() - started > limit:
                raise RuntimeError(f"not every message was acked after {limit:g}s")
            await asyncio.sleep(0.02)
        return written


async def setting(
    replicas: int, emulator: Emulator, channel: Path, work: Path, options: argparse.Namespace
) -> dict[str, Any]:
    """Runs per second through ``replicas`` servers on one fresh database and subscription."""
    subscription = Subscription(emulator, project=f"bench-{uuid.uuid4().hex[:8]}")
    await subscription.create()
    results = work / f"results-{replicas}"
    async with fresh_database(options.postgres) as database:
        env = {
            "PUBSUB_EMULATOR_HOST": emulator.host,
            "WTRUNNER_PUBSUB_SUBSCRIPTION": subscription.path,
            "WTRUNNER_MAX_CONCURRENT_RUNS": str(options.slots),
            "WTRUNNER_DATABASE_URL": database,
        }
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(server(channel, work, {**env, "WTRUNNER_REPLICA_ID": f"r{n}"}))
                for n in range(replicas)
            ]
            await throughput(subscription, servers, results, 4 * replicas, 120)  # warm each

            async def repeats() -> list[float]:
                walls = []
                for _ in range(options.repeat):
                    walls.append(
                        await throughput(subscription, servers, results, options.messages, 600)
                    )
                    await asyncio.sleep(0.5)
                return walls

            walls, conditions = await guarded(f"replicas-{replicas}", repeats, options)
    return {
        "wall_seconds": summary(walls),
        "runs_per_second": summary([options.messages / wall for wall in walls]),
        "conditions": conditions,
    }


async def measure(channel: Path, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    launcher = emulator_launcher()
    if launcher is None:
        raise SystemExit("Google's Pub/Sub emulator (Google Cloud CLI) is not installed")
    emulator = Emulator(launcher, work / "pubsub-emulator.log")
    emulator.start()
    try:
        return {
            str(replicas): await setting(replicas, emulator, channel, work, options)
            for replicas in (1, 2)
        }
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="per batch (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="batches (default 3)")
    parser.add_argument(
        "--slots", type=int, default=4 * (os.cpu_count() or 1),
        help="WTRUNNER_MAX_CONCURRENT_RUNS of each replica (default 4 x CPUs)",
    )  # fmt: skip
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="the PostgreSQL server's maintenance database (fresh databases are made there)",
    )  # fmt: skip
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, _floor):
        figures = asyncio.run(measure(channel, work, options))
    one, two = figures["1"], figures["2"]
    figures["ratio_2_to_1"] = two["runs_per_second"]["median"] / one["runs_per_second"]["median"]
    print(f"--- {options.messages} RunWorkflow messages per batch, {options.slots} slots a replica")
    for replicas in ("1", "2"):
        show(f"{replicas} replica(s): runs per second", figures[replicas]["runs_per_second"],
             "runs/s", 1)  # fmt: skip
    show_value("2 replicas / 1 replica (throughput)", figures["ratio_2_to_1"], "x")
    write_summary("replicas", figures)


if __name__ == "__main__":
    main()
