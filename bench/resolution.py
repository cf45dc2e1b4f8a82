"""Environment resolution: cold (solve + install from a local channel) vs warm (cached).

    python bench/resolution.py [--repeat N]

Cold: a fresh cache dir each time (solve, extract, link, capture activation). Warm: the same
MatchSpec again, answered from the solve cache. Re-solve: what a request pays once the solve
cache has expired (``WTRUNNER_SOLVE_CACHE_SECONDS``, 60 s by default) and the environment is
installed: solve again, nothing to install. The floor: bare spawns of the installed workflow.
Prints figures (never pass/fail) and writes bench/resolution.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from common import (
    SPEC,
    add_quiet_arguments,
    bench_setup,
    guarded,
    measure_floor,
    ratio,
    show,
    show_value,
    summary,
    write_summary,
)

from wtrunner.environments import Environments, parse_matchspec
from wtrunner.settings import Settings


async def measure(channel: Path, work: Path, repeat: int) -> dict[str, dict[str, float]]:
    spec = parse_matchspec(SPEC)
    cold, warm, again = [], [], []
    for attempt in range(repeat):
        settings = Settings(cache_dir=work / f"cache-{attempt}", channels=(channel.as_uri(),))
        environments = Environments(settings, settings.channels)
        await environments.start()
        started = time.perf_counter()
        await environments.resolve(spec)
        cold.append(time.perf_counter() - started)
        for _ in range(200):
            started = time.perf_counter()
            await environments.resolve(spec)
            warm.append(time.perf_counter() - started)
        expired = Settings(
            cache_dir=settings.cache_dir, channels=settings.channels, solve_cache_seconds=0
        )
        environments = Environments(expired, expired.channels)
        await environments.start()
        for _ in range(5):
            started = time.perf_counter()
            await environments.resolve(spec)
            again.append(time.perf_counter() - started)
    return {
        "cold_seconds": summary(cold),
        "warm_seconds": summary(warm),
        "resolve_again_seconds": summary(again),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    add_quiet_arguments(parser)
    options = parser.parse_args()
    with bench_setup() as (work, channel, floor):

        async def both() -> dict[str, Any]:
            figures: dict[str, Any] = await measure(channel, work, options.repeat)
            figures["floor_seconds"] = measure_floor(floor, max(options.repeat, 20))
            return figures

        figures, conditions = asyncio.run(guarded("resolution", both, options))
    floor_median = figures["floor_seconds"]["median"]
    figures["cold_ratio_to_floor"] = ratio(figures["cold_seconds"]["median"], floor_median)
    figures["warm_ratio_to_floor"] = ratio(figures["warm_seconds"]["median"], floor_median)
    figures["conditions"] = conditions
    show("cold resolution (solve + install)", figures["cold_seconds"])
    show("warm resolution (cached)", figures["warm_seconds"])
    show("re-solve (solve cache expired, installed)", figures["resolve_again_seconds"])
    show("bare spawn (floor)", figures["floor_seconds"])
    show_value("cold / bare spawn", figures["cold_ratio_to_floor"], "x", "target cold <= 250 ms")
    show_value("warm / bare spawn", figures["warm_ratio_to_floor"], "x", "target warm <= 1 ms")
    print(f"conditions: {conditions}")
    write_summary("resolution", figures)


if __name__ == "__main__":
    main()
