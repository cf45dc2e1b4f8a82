"""Every benchmark, one after another, then one table of the figures next to the targets of
bench/README.md.

    python bench/run_all.py [--quick] [--no-wait] [--only NAME,...]

Each script waits for a quiet machine itself and writes bench/<name>.json; this prints a
Markdown table from those files (figure, its bare-spawn floor from the same run, the ratio, the
target), and writes bench/run_all.json. ``--quick`` uses small repeat counts (development).
Prints figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["resolution", "overhead", "concurrency", "responsiveness", "memory", "pubsub"]
QUICK = {
    "resolution": ["--repeat", "3"],
    "overhead": ["--repeat", "10"],
    "concurrency": ["--repeat", "1"],
    "responsiveness": ["--repeat", "1", "--seconds", "3"],
    "memory": ["--repeat", "1"],
    "pubsub": ["--repeat", "1"],
}
MIB = 1024 * 1024


def load(name: str) -> dict[str, Any] | None:
    path = BENCH / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3f} s"


def rows() -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, floor of the same run, ratio to the floor, target) per line."""
    table = []
    data = load("overhead")
    if data:
        post, floor = data["post_seconds"]["median"], data["floor_seconds"]["median"]
        table.append(
            (
                "POST / trivial workflow (median)",
                ms(post),
                f"bare spawn {ms(floor)}",
                f"{post / floor:.2f}",
                "ratio <= 1.25",
            )
        )
    data = load("concurrency")
    if data:
        targets = {"20": "<= 1.4 s", "64": "<= 2 s (64 slots)"}
        for count, level in data["levels"].items():
            wall, floor = level["wall_seconds"]["median"], level["floor_wall_seconds"]["median"]
            table.append(
                (
                    f"{count} concurrent 1-s runs, wall (median); "
                    f"{level['throughput_runs_per_second']['median']:.1f} runs/s",
                    ms(wall),
                    f"{count} spawned at once {ms(floor)}",
                    f"{wall / floor:.2f}",
                    targets.get(count, "-"),
                )
            )
    data = load("responsiveness")
    if data:
        floor = data["floor_seconds"]["median"]
        for count, level in data["levels"].items():
            stats = level["server"]["get_seconds"]
            beside = ""
            if "direct" in level:
                direct = level["direct"]["get_seconds"]["p99"]
                beside = f"; p99 beside {count} runs spawned directly {ms(direct)}"
            table.append(
                (
                    f"GET / p50 / p99, {count} runs in flight",
                    f"{ms(stats['median'])} / {ms(stats['p99'])}",
                    f"bare spawn {ms(floor)}{beside}",
                    f"{stats['p99'] / floor:.2f} (p99)",
                    "p99 <= 20 ms (20 in flight)" if count != "0" else "-",
                )
            )
    data = load("resolution")
    if data:
        floor = data["floor_seconds"]["median"]
        for name, key, target in (
            ("warm resolution (median)", "warm_seconds", "<= 1 ms"),
            ("cold resolution, solve + install (median)", "cold_seconds", "<= 250 ms"),
            ("re-solve after the solve cache expired", "resolve_again_seconds", "-"),
        ):
            if key in data:
                value = data[key]["median"]
                table.append(
                    (name, ms(value), f"bare spawn {ms(floor)}", f"{value / floor:.4f}", target)
                )
    data = load("memory")
    if data:
        workflow = data["floor_workflow_peak_rss"]["median"]
        floor = f"workflow process {workflow / MIB:.1f} MiB"
        for name, state in (("right after start", "idle_start"), ("after one run", "idle_warm")):
            rss = data[state]["VmRSS"]["median"]
            table.append(
                (
                    f"server RSS idle, {name}",
                    f"{rss / MIB:.1f} MiB ({rss / 1e6:.1f} MB)",
                    floor,
                    f"{rss / workflow:.2f}",
                    "<= 80 MB",
                )
            )
        slope = data["bytes_per_run_in_flight"]["median"]
        per_run = f"{slope / 1024:.0f} KiB"
        table.append(
            ("server RSS per run in flight", per_run, floor, f"{slope / workflow:.4f}", "-")
        )
    data = load("pubsub")
    if data:
        rate, floor = data["runs_per_second"]["median"], data["floor_runs_per_second"]["median"]
        table.append(
            (
                f"Pub/Sub pull, {data['messages']} messages, {data['slots']} slots",
                f"{rate:.1f} runs/s",
                f"spawned directly {floor:.1f} runs/s",
                f"{floor / rate:.2f} (time)",
                ">= 10 runs/s",
            )
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small repeat counts")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--only", help="comma-separated script names (default: all)")
    parser.add_argument("--table-only", action="store_true", help="print the table, run nothing")
    options = parser.parse_args()
    names = options.only.split(",") if options.only else SCRIPTS
    failed = []
    for name in [] if options.table_only else names:
        print(f"\n=== {name}", flush=True)
        argv = [sys.executable, str(BENCH / f"{name}.py")]
        argv += QUICK[name] if options.quick else []
        argv += ["--no-wait"] if options.no_wait else []
        if subprocess.run(argv).returncode != 0:
            failed.append(name)
    table = rows()
    print("\n| figure | measured | bare-spawn floor, same run | ratio to floor | target |")
    print("|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    (BENCH / "run_all.json").write_text(json.dumps({"rows": table, "failed": failed}, indent=2))
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
