"""The run store: what recording a run costs, and listing runs from a large history.

    python bench/run_store.py [--runs N] [--repeat N] [--database-url URL]

Fills a fresh SQLite store (the embedded default), or the empty database URL names, with N
finished runs (100,000 by default) in
bulk, then measures: one page of 100 runs, newest first, first page and a later page (by
cursor) and a filtered page; ``get`` of one run; and the writes one run costs on the run path
(create, running, final). Prints figures (never pass/fail) and writes bench/run_store.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from common import show, summary, write_summary
from sqlalchemy import insert

from wtrunner.run_states import RunState
from wtrunner.runstore import NewRun, RunStore
from wtrunner.runstore.schema import runs as runs_table

BATCH = 5000


async def fill(store: RunStore, count: int) -> None:
    """``count`` finished runs, one second apart, a fifth of them failed."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for first in range(0, count, BATCH):
        rows: list[dict[str, Any]] = []
        for index in range(first, min(count, first + BATCH)):
            created = start + dt.timedelta(seconds=index)
            rows.append(
                {
                    "id": f"run-{index:08d}", "attempt": 1, "workflow_run_id": f"w{index}",
                    "idempotency_key": f"run:w{index}", "package": f"wt-p{index % 7}-workflow",
                    "matchspec": "wt-p-workflow", "resolved": None,
                    "invoker_type": "BlockingLocalSubprocessInvoker",
                    "state": (RunState.FAILED if index % 5 == 0 else RunState.SUCCEEDED).value,
                    "front_door": "http", "created_at": created, "started_at": created,
                    "finished_at": created + dt.timedelta(seconds=1),
                    "outcome": {"kind": "ok", "result": {"n": index}}, "results_url": "file:///r",
                    "replica": "bench", "job_name": None, "pgid": None,
                    "data_connection_names": [], "request_hash": "h", "cancel_requested": False,
                    "client": None,
                }
            )  # fmt: skip
        await store.run_sync(functools.partial(_insert_all, rows))


def _insert_all(rows: list[dict[str, Any]], conn: Any) -> None:
    conn.execute(insert(runs_table), rows)


async def timed(action: Any, repeat: int) -> list[float]:
    """Seconds per call of ``action`` (a coroutine function), ``repeat`` times."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(url: str, count: int, repeat: int) -> dict[str, Any]:
    store = await RunStore.open(url)
    try:
        started = time.perf_counter()
        await fill(store, count)
        print(f"filled {count} runs in {time.perf_counter() - started:.1f} s")
        first = await store.list(limit=100)
        later_cursor = (await store.list(limit=100, cursor=first.next_cursor)).next_cursor
        figures = {
            "list first page of 100": await timed(lambda: store.list(limit=100), repeat),
            "list a later page of 100": await timed(
                lambda: store.list(limit=100, cursor=later_cursor), repeat
            ),
            "list 100 failed runs": await timed(
                lambda: store.list(state=RunState.FAILED, limit=100), repeat
            ),
            "get one run": await timed(lambda: store.get(f"run-{count // 2:08d}"), repeat),
        }
        writes = []
        for index in range(repeat):
            run_id = f"new-{index}"
            began = time.perf_counter()
            await store.create(
                NewRun(id=run_id, package="wt-p-workflow", matchspec="wt-p-workflow",
                       invoker_type="x", front_door="http", results_url="file:///r",
                       replica="bench")
            )  # fmt: skip
            await store.transition(run_id, RunState.RUNNING)
            await store.transition(run_id, RunState.SUCCEEDED)
            writes.append(time.perf_counter() - began)
        figures["the three writes of one run"] = writes
    finally:
        await store.close()
    return {name: summary(samples) for name, samples in figures.items()}


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--database-url",
        help="an empty database to measure instead of a fresh SQLite file, e.g. "
        "postgresql://postgres@127.0.0.1:5432/wtrunner_bench (it is filled, not emptied)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        url = args.database_url or f"sqlite:///{Path(work) / 'wtrunner.db'}"
        figures = asyncio.run(measure(url, args.runs, args.repeat))
    for name, stats in figures.items():
        show(name, stats)
    name = "run_store_postgresql" if args.database_url else "run_store"
    write_summary(name, {"runs": args.runs, **figures})


if __name__ == "__main__":
    main()
