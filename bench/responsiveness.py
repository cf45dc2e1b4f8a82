"""Responsiveness: ``GET /`` latency (p50, p99) while N runs are in flight.

    python bench/responsiveness.py [--levels 0,20,32] [--seconds S] [--repeat N]

N clients each keep one run of the 1-second workflow in flight through the server (a new one
as soon as theirs answers, so workflow processes are started and reaped all the time) while
another client sends ``GET /`` every 10 ms for S seconds; level 0 is the idle server. The number
of workflow processes running is sampled from /proc meanwhile.

Two floors from the same run: the bare spawn of the trivial workflow, and the same ``GET /``
probe of the idle server while N copies of the 1-second workflow are kept running *directly*
(spawned by the benchmark, not the server): what the machine's CPU contention alone does to
the latency. Prints figures (never pass/fail) and writes bench/responsiveness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    Floor,
    Server,
    add_quiet_arguments,
    bench_setup,
    child_count,
    client_session,
    guarded,
    measure_floor,
    ratio,
    server,
    show,
    show_value,
    summary,
    write_summary,
)

PARAMS = {"sleep": {"seconds": 1.0}}
PROBE_INTERVAL = 0.01


async def probe(running: Server, session: Any, seconds: float, in_flight: Any) -> dict[str, Any]:
    """``GET /`` every 10 ms for ``seconds``; latencies and the sampled ``in_flight()``."""
    latencies: list[float] = []
    counts: list[int] = []
    started = time.monotonic()
    next_sample = started
    while time.monotonic() - started < seconds:
        latencies.append(await running.get_health(session))
        if time.monotonic() >= next_sample:
            counts.append(in_flight())
            next_sample += 0.5
        await asyncio.sleep(PROBE_INTERVAL)
    return {"latencies": latencies, "in_flight": counts}


async def until_running(in_flight: Any, count: int) -> None:
    deadline = time.monotonic() + 5
    while count and in_flight() < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def through_server(
    running: Server, session: Any, count: int, seconds: float
) -> dict[str, Any]:
    """Probe while ``count`` runs are kept in flight through the server."""
    stop = asyncio.Event()

    async def keep_one_in_flight() -> int:
        done = 0
        while not stop.is_set():
            await running.post_run(session, PARAMS)
            done += 1
        return done

    workers = [asyncio.create_task(keep_one_in_flight()) for _ in range(count)]
    await until_running(running.in_flight, count)
    result = await probe(running, session, seconds, running.in_flight)
    stop.set()
    result["runs"] = sum(await asyncio.gather(*workers))
    return result


async def beside_server(
    running: Server, session: Any, floor: Floor, count: int, seconds: float
) -> dict[str, Any]:
    """Probe the idle server while ``count`` workflow runs are kept going directly."""
    stop = threading.Event()
    done = [0] * count

    def keep_one_running(index: int) -> None:
        while not stop.is_set():
            floor.run(PARAMS)
            done[index] += 1

    threads = [threading.Thread(target=keep_one_running, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()

    def direct() -> int:
        return child_count(os.getpid()) - 1  # the server is a child too

    await until_running(direct, count)
    result = await probe(running, session, seconds, direct)
    stop.set()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    result["runs"] = sum(done)
    return result


async def measure(
    floor: Floor, channel: Path, work: Path, options: argparse.Namespace
) -> dict[str, Any]:
    slots = max(max(options.levels), 1)
    levels: dict[str, Any] = {}
    with server(channel, work, {"WTRUNNER_MAX_CONCURRENT_RUNS": str(slots)}) as running:
        async with client_session() as session:
            await running.post_run(session)  # install, cache "no schema"
            for count in options.levels:

                async def level(count: int = count) -> dict[str, Any]:
                    figures: dict[str, Any] = {"runs_in_flight": count}
                    kinds = ["server", "direct"] if count else ["server"]
                    for kind in kinds:
                        latencies: list[float] = []
                        p99s, in_flight, runs = [], [], 0
                        for _ in range(options.repeat):
                            if kind == "server":
                                result = await through_server(
                                    running, session, count, options.seconds
                                )
                            else:
                                result = await beside_server(
                                    running, session, floor, count, options.seconds
                                )
                            latencies += result["latencies"]
                            p99s.append(summary(result["latencies"])["p99"])
                            in_flight += result["in_flight"]
                            runs += result["runs"]
                            await asyncio.sleep(0.5)
                        figures[kind] = {
                            "get_seconds": summary(latencies),
                            "get_p99_per_window_seconds": summary(p99s),
                            "measured_in_flight": summary(in_flight),
                            "runs_completed": runs,
                        }
                    return figures

                figures, conditions = await guarded(f"{count} in flight", level, options)
                figures["conditions"] = conditions
                levels[str(count)] = figures
    return {"slots": slots, "probe_interval_seconds": PROBE_INTERVAL, "levels": levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[0, 20, 32],
        help="runs kept in flight (default 0,20,32; the largest sets the run slots)",
    )
    parser.add_argument("--seconds", type=float, default=8, help="probe window (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="windows per level (default 3)")
    parser.add_argument(
        "--floor-repeat", type=int, default=30, help="bare spawns for the floor (default 30)"
    )
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):

        async def floor_only() -> dict[str, float]:
            return measure_floor(floor, options.floor_repeat)

        floor_seconds, floor_conditions = asyncio.run(guarded("floor", floor_only, options))
        figures = asyncio.run(measure(floor, channel, work, options))
    figures["floor_seconds"] = floor_seconds
    figures["floor_conditions"] = floor_conditions
    show("bare spawn (floor)", floor_seconds)
    for level in figures["levels"].values():
        count = level["runs_in_flight"]
        for kind, title in (
            ("server", f"GET / with {count} runs in flight through the server"),
            ("direct", f"floor: GET / of the idle server beside {count} runs spawned directly"),
        ):
            if kind not in level:
                continue
            figures_of = level[kind]
            stats = figures_of["get_seconds"]
            print(f"--- {title}")
            show("  GET / latency", stats)
            show("  p99 of each window", figures_of["get_p99_per_window_seconds"])
            show("  workflow processes running (sampled)", figures_of["measured_in_flight"], "", 1)
            figures_of["p50_ratio_to_floor"] = ratio(stats["median"], floor_seconds["median"])
            figures_of["p99_ratio_to_floor"] = ratio(stats["p99"], floor_seconds["median"])
            show_value("  p50 / bare spawn", figures_of["p50_ratio_to_floor"], "x")
            show_value("  p99 / bare spawn", figures_of["p99_ratio_to_floor"], "x")
            print(f"  runs completed meanwhile: {figures_of['runs_completed']}")
        if "direct" in level:
            level["p99_ratio_to_direct"] = ratio(
                level["server"]["get_seconds"]["p99"], level["direct"]["get_seconds"]["p99"]
            )
            show_value("  p99 through the server / p99 beside", level["p99_ratio_to_direct"], "x")
        print(f"  conditions: {level['conditions']}")
    write_summary("responsiveness", figures)


if __name__ == "__main__":
    main()
