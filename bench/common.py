"""Shared by the benchmarks: a test channel, summary statistics, and the JSON summary file."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wtrunner.channel import build_channel  # noqa: E402


def test_channel(directory: Path) -> Path:
    """Pack tests/workflows into a channel under ``directory``."""
    output = directory / "channel"
    asyncio.run(build_channel([REPO / "tests" / "workflows"], output))
    return output


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median and spread (min, p10, p90, p99, max) of ``samples``."""
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p10": pct(10),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1],
    }


def show(name: str, stats: dict[str, float], unit: str = "ms", scale: float = 1000) -> None:
    """Print one figure as ``name: median (p10-p90, n)``."""
    print(
        f"{name:<48} median {stats['median'] * scale:9.3f} {unit}"
        f"   p10 {stats['p10'] * scale:9.3f}   p90 {stats['p90'] * scale:9.3f}"
        f"   max {stats['max'] * scale:9.3f}   n={stats['n']}"
    )


def write_summary(name: str, figures: dict[str, Any]) -> Path:
    """Write ``bench/<name>.json`` next to the scripts and say where it is."""
    path = Path(__file__).with_name(f"{name}.json")
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"summary written to {path.relative_to(REPO)}")
    return path
