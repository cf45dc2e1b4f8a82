"""Concurrency scaling: throughput and latency of N concurrent ``POST /`` runs of a 1-second
workflow (the trivial workflow with ``{"sleep": {"seconds": 1}}``), with a run slot for each.

    python bench/concurrency.py [--levels 1,4,16,20,64] [--repeat N] [--slots S]

For each N, all N requests are sent at once and the wall time runs until the last answer. Two
references from the same run: the ideal (every run overlaps: one 1-second run spawned directly)
and the floor (the same N runs spawned directly at once with ``subprocess``, which on a small
machine is slower than the ideal because N interpreters start on few cores). Prints figures
(never pass/fail) and writes bench/concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from common import (
    Floor,
    Server,
    add_quiet_arguments,
    bench_setup,
    client_session,
    guarded,
    ratio,
    server,
    show,
    show_value,
    summary,
    write_summary,
)

SECONDS = 1.0
PARAMS = {"sleep": {"seconds": SECONDS}}


async def burst(running: Server, session: Any, count: int) -> tuple[float, list[float]]:
    """``count`` runs at once: wall time until the last answer, and each request's latency."""
    started = time.perf_counter()
    latencies = await asyncio.gather(*(running.post_run(session, PARAMS) for _ in range(count)))
    return time.perf_counter() - started, list(latencies)


async def measure(floor: Floor, channel: Path, work: Path, options: argparse.Namespace) -> Any:
    slots = options.slots or max(options.levels)
    levels: dict[str, Any] = {}
    with server(channel, work, {"WTRUNNER_MAX_CONCURRENT_RUNS": str(slots)}) as running:
        async with client_session() as session:
            await running.post_run(session)  # install, cache "no schema"
            await burst(running, session, min(slots, 8))  # warm connections and allocator
            for count in options.levels:

                async def level(count: int = count) -> dict[str, Any]:
                    walls, latencies, floors, ideals = [], [], [], []
                    for _ in range(options.repeat):
                        ideals.append(floor.run(PARAMS))
                        await asyncio.sleep(0.2)
                        floors.append(floor.run_many(count, PARAMS))
                        await asyncio.sleep(0.2)
                        wall, each = await burst(running, session, count)
                        walls.append(wall)
                        latencies += each
                        await asyncio.sleep(0.5)  # let the server finish cleaning up
                    return {
                        "runs": count,
                        "wall_seconds": summary(walls),
                        "throughput_runs_per_second": summary([count / w for w in walls]),
                        "latency_seconds": summary(latencies),
                        "floor_wall_seconds": summary(floors),
                        "ideal_seconds": summary(ideals),
                    }

                figures, conditions = await guarded(f"{count} runs", level, options)
                figures["conditions"] = conditions
                levels[str(count)] = figures
                report(figures)
    return {"slots": slots, "workflow_seconds": SECONDS, "levels": levels}


def report(figures: dict[str, Any]) -> None:
    count = figures["runs"]
    wall = figures["wall_seconds"]["median"]
    figures["ratio_to_ideal"] = ratio(wall, figures["ideal_seconds"]["median"])
    figures["ratio_to_floor"] = ratio(wall, figures["floor_wall_seconds"]["median"])
    print(f"--- {count} concurrent {SECONDS:g}-second runs")
    show("  wall time, all answered", figures["wall_seconds"], "s", 1)
    show("  latency per request", figures["latency_seconds"], "s", 1)
    show("  throughput", figures["throughput_runs_per_second"], "runs/s", 1)
    show("  floor: same runs spawned directly at once", figures["floor_wall_seconds"], "s", 1)
    show("  ideal: one run spawned directly", figures["ideal_seconds"], "s", 1)
    show_value("  wall / ideal", figures["ratio_to_ideal"], "x")
    show_value("  wall / floor", figures["ratio_to_floor"], "x")
    print(f"  conditions: {figures['conditions']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 4, 16, 20, 64],
        help="numbers of concurrent runs (default 1,4,16,20,64)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="bursts per level (default 5)")
    parser.add_argument(
        "--slots", type=int, help="WTRUNNER_MAX_CONCURRENT_RUNS (default: the largest level)"
    )
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):
        figures = asyncio.run(measure(floor, channel, work, options))
    write_summary("concurrency", figures)


if __name__ == "__main__":
    main()
