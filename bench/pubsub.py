"""Pub/Sub: messages per second through the pull consumer, trivial workflow, Google's emulator.

    python bench/pubsub.py [--messages M] [--repeat N] [--slots S]

Starts the emulator (Google Cloud CLI) on 127.0.0.1 and a server that pulls a fresh
subscription, warms it with one message, then per repeat publishes M RunWorkflow commands in
one publish call and times until every run's result.json exists (and until the consumer has
acked them all, from /metrics). Where the CPU goes (server, workflow processes, emulator) and
how many workflow processes run (sampled) say what limits it. The floor: the same M runs
spawned directly with ``subprocess``, as many at a time as the server has run slots. Prints
figures (never pass/fail) and writes bench/pubsub.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    SPEC,
    Floor,
    Server,
    add_quiet_arguments,
    bench_setup,
    client_session,
    cpu_seconds,
    guarded,
    process_stats,
    ratio,
    server,
    show,
    show_value,
    summary,
    write_summary,
)

from tests.pubsub_helpers import Emulator, Subscription, emulator_launcher


def command(results: Path) -> dict[str, Any]:
    """One RunWorkflow command of the trivial workflow."""
    return {
        "schema_version": "v1",
        "payload": {
            "match_spec": SPEC,
            "command": "run",
            "invoker_kwargs": {
                "workflow_run_id": uuid.uuid4().hex,
                "results_url": str(results),
                "params": {},
                "mock_io": False,
            },
        },
    }


async def messages(running: Server, session: Any) -> dict[str, float]:
    """The pull consumer's message counts by outcome (acked, nacked, duplicate)."""
    async with session.get(f"{running.url}/metrics") as reply:
        text = await reply.text()
    counts = {"acked": 0.0, "nacked": 0.0, "duplicate": 0.0}
    for line in text.splitlines():
        if line.startswith("wtrunner_pubsub_messages_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds the live processes of process group ``pgid`` used (the emulator's JVM)."""
    return sum(sum(cpu_seconds(pid)) for pid, fields in process_stats() if int(fields[2]) == pgid)


async def batch(
    subscription: Subscription, running: Server, session: Any, count: int, limit: float
) -> dict[str, Any]:
    """Publish ``count`` commands at once; seconds until every result.json exists and until
    the consumer has acked them all, and the workflow processes running (sampled)."""
    results = running.home / "results"
    directories = [results / uuid.uuid4().hex for _ in range(count)]
    acked = (await messages(running, session))["acked"] + count
    started = time.perf_counter()
    await subscription.publish(*(command(directory) for directory in directories))
    waiting = [directory / "result.json" for directory in directories]
    in_flight, next_sample = [], started
    while waiting:
        waiting = [path for path in waiting if not path.exists()]
        now = time.perf_counter()
        if now - started > limit:
            raise RuntimeError(f"{len(waiting)} of {count} runs had no result after {limit:g}s")
        if now >= next_sample:
            in_flight.append(running.in_flight())
            next_sample = now + 0.05
        await asyncio.sleep(0.005)
    written = time.perf_counter() - started
    while (await messages(running, session))["acked"] < acked:
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"not every message was acked after {limit:g}s")
        await asyncio.sleep(0.02)
    acked_after = time.perf_counter() - started
    return {"written": written, "acked": acked_after, "in_flight": in_flight}


async def measure(
    floor: Floor, channel: Path, work: Path, options: argparse.Namespace
) -> dict[str, Any]:
    launcher = emulator_launcher()
    if launcher is None:
        raise SystemExit("Google's Pub/Sub emulator (Google Cloud CLI) is not installed")
    emulator = Emulator(launcher, work / "pubsub-emulator.log")
    emulator.start()
    assert emulator.process is not None
    emulator_pid = emulator.process.pid  # it leads its process group
    try:
        subscription = Subscription(emulator, project=f"bench-{uuid.uuid4().hex[:8]}")
        await subscription.create()
        env = {
            "PUBSUB_EMULATOR_HOST": emulator.host,
            "WTRUNNER_PUBSUB_SUBSCRIPTION": subscription.path,
            "WTRUNNER_MAX_CONCURRENT_RUNS": str(options.slots),
        }
        with server(channel, work, env) as running:
            async with client_session() as session:
                await batch(subscription, running, session, 1, 120)  # install, "no schema"
                await batch(subscription, running, session, options.slots, 60)

                async def repeats() -> dict[str, Any]:
                    walls, acks, floors, in_flight = [], [], [], []
                    cpu = {"server": 0.0, "workflows": 0.0, "emulator": 0.0}
                    for _ in range(options.repeat):
                        floors.append(floor.run_pool(options.messages, options.slots))
                        await asyncio.sleep(0.5)
                        own, workflows = running.cpu()
                        emulator_cpu = group_cpu_seconds(emulator_pid)
                        result = await batch(subscription, running, session, options.messages, 600)
                        own_after, workflows_after = running.cpu()
                        cpu["server"] += own_after - own
                        cpu["workflows"] += workflows_after - workflows
                        cpu["emulator"] += group_cpu_seconds(emulator_pid) - emulator_cpu
                        walls.append(result["written"])
                        acks.append(result["acked"])
                        in_flight += result["in_flight"]
                        await asyncio.sleep(0.5)
                    runs = options.messages * options.repeat
                    return {
                        "messages": options.messages,
                        "slots": options.slots,
                        "wall_seconds": summary(walls),
                        "acked_seconds": summary(acks),
                        "runs_per_second": summary([options.messages / w for w in walls]),
                        "measured_in_flight": summary(in_flight),
                        "cpu_seconds_per_message": {k: v / runs for k, v in cpu.items()},
                        "floor_wall_seconds": summary(floors),
                        "floor_runs_per_second": summary([options.messages / f for f in floors]),
                    }

                figures, conditions = await guarded("pubsub", repeats, options)
                figures["consumer_messages"] = await messages(running, session)
    finally:
        emulator.stop()
    figures["conditions"] = conditions
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100, help="per batch (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="batches (default 5)")
    parser.add_argument(
        "--slots",
        type=int,
        default=4 * (os.cpu_count() or 1),
        help="WTRUNNER_MAX_CONCURRENT_RUNS (default: the server's default, 4 x CPUs)",
    )
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):
        figures = asyncio.run(measure(floor, channel, work, options))
    figures["ratio_to_floor"] = ratio(
        figures["wall_seconds"]["median"], figures["floor_wall_seconds"]["median"]
    )
    count, slots = figures["messages"], figures["slots"]
    print(f"--- {count} RunWorkflow messages per batch, {slots} run slots")
    show("wall time until every result.json exists", figures["wall_seconds"], "s", 1)
    show("wall time until every message is acked", figures["acked_seconds"], "s", 1)
    show("throughput (result.json written)", figures["runs_per_second"], "runs/s", 1)
    show("workflow processes running (sampled)", figures["measured_in_flight"], "", 1)
    for name, seconds in figures["cpu_seconds_per_message"].items():
        show_value(f"CPU per message: {name}", seconds * 1000, "ms")
    show("floor: same runs spawned directly", figures["floor_wall_seconds"], "s", 1)
    show("floor throughput", figures["floor_runs_per_second"], "runs/s", 1)
    show_value("wall / floor", figures["ratio_to_floor"], "x", "target >= 10 runs/s")
    print(f"consumer message counts at the end: {figures['consumer_messages']}")
    print(f"conditions: {figures['conditions']}")
    write_summary("pubsub", figures)


if __name__ == "__main__":
    main()
