"""Environment resolution: cold (solve + install from a local channel) vs warm (cached).

    python bench/resolution.py [--repeat N]

Prints figures (never pass/fail) and writes bench/resolution.json.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import show, summary, test_channel, write_summary

from wtrunner.environments import Environments, parse_matchspec
from wtrunner.settings import Settings

SPEC = "wt-test-trivial-workflow"


async def measure(channel: Path, work: Path, repeat: int) -> dict[str, dict[str, float]]:
    spec = parse_matchspec(SPEC)
    cold, warm = [], []
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
    return {"cold_seconds": summary(cold), "warm_seconds": summary(warm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wtrunner-bench-") as directory:
        work = Path(directory)
        channel = test_channel(work)
        figures = asyncio.run(measure(channel, work, args.repeat))
    show("cold resolution (solve + install)", figures["cold_seconds"])
    show("warm resolution (cached)", figures["warm_seconds"])
    write_summary("resolution", figures)


if __name__ == "__main__":
    main()
