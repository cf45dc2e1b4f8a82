"""Per-run overhead: wall time of ``POST /`` for the trivial workflow vs running the same installed
workflow command directly with ``subprocess`` (the bare-spawn floor), as a ratio.

    python bench/overhead.py [--repeat N]

The server runs as a process of its own, warmed by a few runs first (install, "no schema"
cached); POST / and bare spawns alternate so both see the same machine. ``GET /`` round trips
show what HTTP alone costs; the server's own CPU time per run (from /proc) shows what the
service does for each run. Prints figures (never pass/fail) and writes bench/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from common import (
    Floor,
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

WARM_RUNS = 5


async def measure(floor: Floor, channel: Path, work: Path, options: argparse.Namespace) -> Any:
    with server(channel, work) as running:
        async with client_session() as session:
            first = await running.post_run(session)  # loads py-rattler, solves, installs
            for _ in range(WARM_RUNS):
                await running.post_run(session)
            floor.run()

            async def alternate() -> dict[str, Any]:
                posts, spawns, gets, pairs = [], [], [], []
                own, workflows = running.cpu()
                for _ in range(options.repeat):
                    spawn = floor.run()
                    post = await running.post_run(session)
                    gets.append(await running.get_health(session))
                    spawns.append(spawn)
                    posts.append(post)
                    pairs.append(post / spawn)
                own_after, workflows_after = running.cpu()
                return {
                    "server_cpu_seconds_per_run": (own_after - own) / options.repeat,
                    "workflow_cpu_seconds_per_run": (workflows_after - workflows) / options.repeat,
                    "post_seconds": summary(posts),
                    "floor_seconds": summary(spawns),
                    "get_seconds": summary(gets),
                    "pair_ratio": summary(pairs),
                }

            figures, conditions = await guarded("overhead", alternate, options)
            figures["first_post_seconds"] = first
            return figures, conditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=100, help="runs of each kind (default 100)")
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):
        figures, conditions = asyncio.run(measure(floor, channel, work, options))
    floor_median = figures["floor_seconds"]["median"]
    post_median = figures["post_seconds"]["median"]
    figures["ratio"] = ratio(post_median, floor_median)
    figures["overhead_seconds"] = post_median - floor_median
    figures["conditions"] = conditions
    show("bare spawn (floor)", figures["floor_seconds"])
    show("POST / trivial workflow", figures["post_seconds"])
    show("GET / (HTTP round trip alone)", figures["get_seconds"])
    show_value("first POST / of a fresh server (cold)", figures["first_post_seconds"] * 1000, "ms")
    show("POST / / bare spawn, per pair", figures["pair_ratio"], unit="x", scale=1)
    show_value("POST / / bare spawn, ratio of medians", figures["ratio"], "x", "target <= 1.25")
    show_value("overhead per run (median difference)", figures["overhead_seconds"] * 1000, "ms")
    server_cpu = figures["server_cpu_seconds_per_run"] * 1000
    show_value("server CPU per run (its own, with one GET /)", server_cpu, "ms")
    workflow_cpu = figures["workflow_cpu_seconds_per_run"] * 1000
    show_value("workflow process CPU per run", workflow_cpu, "ms")
    print(f"conditions: {conditions}")
    write_summary("overhead", figures)


if __name__ == "__main__":
    main()
