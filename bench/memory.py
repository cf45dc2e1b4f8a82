"""Memory: the server's resident memory (VmRSS) idle, and per run in flight.

    python bench/memory.py [--levels 0,8,16,32,64] [--repeat N]

Each repeat starts a fresh server (HTTP features only, no Pub/Sub) and reads /proc/<pid>/status:
right after it answers, after one run (idle, warm), with N runs of a 3-second workflow in flight
(median of samples taken while all N processes run), and idle again after the bursts. The slope
of RSS over N (least squares) is the memory each in-flight run costs the server. The floor: the
peak RSS of the workflow process itself, spawned directly. Prints figures (never pass/fail) and
writes bench/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    Server,
    add_quiet_arguments,
    bench_setup,
    client_session,
    guarded,
    memory_status,
    server,
    show,
    show_value,
    summary,
    write_summary,
)

MIB = 1024 * 1024
PARAMS = {"sleep": {"seconds": 3.0}}
SETTLE_SECONDS = 1.0
STATES = {
    "idle_start": "idle, right after start",
    "idle_warm": "idle, after one run",
    "idle_after": "idle, after the bursts",
}


async def settled(running: Server) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and Threads once the server has been idle for a moment."""
    await asyncio.sleep(SETTLE_SECONDS)
    return memory_status(running.pid)


async def rss_in_flight(running: Server, session: Any, count: int) -> int:
    """Median RSS while ``count`` runs are in flight."""
    runs = [asyncio.create_task(running.post_run(session, PARAMS)) for _ in range(count)]
    deadline = time.monotonic() + 2.5
    while running.in_flight() < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    samples = []
    for _ in range(5):
        samples.append(running.rss())
        await asyncio.sleep(0.05)
    await asyncio.gather(*runs)
    return int(statistics.median(samples))


async def one_server(channel: Path, work: Path, levels: list[int]) -> dict[str, Any]:
    slots = max(max(levels), 1)
    with server(channel, work, {"WTRUNNER_MAX_CONCURRENT_RUNS": str(slots)}) as running:
        figures: dict[str, Any] = {"idle_start": await settled(running)}
        async with client_session() as session:
            await running.post_run(session)
            figures["idle_warm"] = await settled(running)
            figures["in_flight"] = {
                str(count): await rss_in_flight(running, session, count) for count in levels
            }
            figures["idle_after"] = await settled(running)
    return figures


async def measure(channel: Path, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    rounds = [await one_server(channel, work, options.levels) for _ in range(options.repeat)]
    figures: dict[str, Any] = {
        state: {key: summary([r[state][key] for r in rounds]) for key in rounds[0][state]}
        for state in ("idle_start", "idle_warm", "idle_after")
    }
    figures["in_flight"] = {
        str(count): summary([r["in_flight"][str(count)] for r in rounds])
        for count in options.levels
    }
    slopes = []
    for r in rounds:
        xs = list(options.levels)
        ys = [r["in_flight"][str(count)] for count in xs]
        slopes.append(statistics.linear_regression(xs, ys).slope)
    figures["bytes_per_run_in_flight"] = summary(slopes)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[0, 8, 16, 32, 64],
        help="runs in flight (default 0,8,16,32,64; the largest sets the run slots)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="fresh servers (default 5)")
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):

        async def run() -> dict[str, Any]:
            figures = await measure(channel, work, options)
            figures["floor_workflow_peak_rss"] = summary([floor.peak_rss() for _ in range(10)])
            return figures

        figures, conditions = asyncio.run(guarded("memory", run, options))
    figures["conditions"] = conditions
    for state, label in STATES.items():
        show(f"server RSS {label}", figures[state]["VmRSS"], "MiB", 1 / MIB)
        show("  of which anonymous", figures[state]["RssAnon"], "MiB", 1 / MIB)
        show("  of which file-backed (libraries)", figures[state]["RssFile"], "MiB", 1 / MIB)
        show("  threads", figures[state]["Threads"], "", 1)
    for count, stats in figures["in_flight"].items():
        show(f"server RSS with {count} runs in flight", stats, "MiB", 1 / MIB)
    slope = figures["bytes_per_run_in_flight"]
    show("server RSS per run in flight (slope)", slope, "KiB", 1 / 1024)
    show("floor: workflow process peak RSS", figures["floor_workflow_peak_rss"], "MiB", 1 / MIB)
    figures["per_run_ratio_to_workflow_rss"] = (
        figures["bytes_per_run_in_flight"]["median"] / figures["floor_workflow_peak_rss"]["median"]
    )
    show_value("per-run server RSS / workflow peak RSS", figures["per_run_ratio_to_workflow_rss"])
    print(f"conditions: {conditions}")
    write_summary("memory", figures)


if __name__ == "__main__":
    main()
