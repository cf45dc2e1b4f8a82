"""Load: 500 runs with mixed outcomes against a real server process; nothing lost or leaked."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import run_files_left, until
from tests.processes import children_of, start_server
from wtrunner.run_request import TIMEOUT_MESSAGE

RUNS = 500
CONCURRENCY = 16

# (package, params, query) -> (expected status, does a result.json exist afterwards)
KINDS: dict[str, tuple[str, dict[str, Any], dict[str, str], int, bool]] = {
    "ok": ("wt-test-trivial-workflow", {"sleep": {"seconds": 0.05}}, {}, 200, True),
    "workflow_error": ("wt-test-echo-workflow", {"echo": {"raise": "bad"}}, {}, 500, True),
    "crash": ("wt-test-crash-workflow", {}, {}, 500, False),
    "timeout": ("wt-test-slow-workflow", {"sleep": {"seconds": 30}}, {"timeout": "0.3"},
                500, False),
}  # fmt: skip


def _status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _rss_mib(pid: int) -> float:
    return int(_status_of(pid)["VmRSS"].split()[0]) / 1024


def _fds(pid: int) -> list[str]:
    """Descriptors that are not sockets nor the run store's SQLite files (its connection pool
    grows with concurrency and keeps its connections)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return sorted(
        target
        for target in targets
        if not target.startswith("socket:") and "wtrunner.db" not in Path(target).name
    )


@pytest.mark.slow
async def test_500_mixed_runs_lose_nothing_and_leak_nothing(tmp_path: Path, channel: Path) -> None:
    cache = tmp_path / "cache"
    (tmp_path / "tmp").mkdir()
    server, base = start_server(
        tmp_path,
        stderr=subprocess.DEVNULL,
        TMPDIR=str(tmp_path / "tmp"),
        WTRUNNER_CHANNELS=channel.as_uri(),
        WTRUNNER_MAX_CONCURRENT_RUNS=str(CONCURRENCY),
        WTRUNNER_KILL_GRACE_SECONDS="0.2",
    )
    try:
        plan = [kind for kind in KINDS for _ in range(RUNS // len(KINDS))]
        random.Random(7).shuffle(plan)
        results = tmp_path / "results"

        async with aiohttp.ClientSession() as session:

            async def one(index: int, kind: str) -> tuple[int, dict[str, Any]]:
                package, params, query, _, _ = KINDS[kind]
                body = {
                    "params": params,
                    "execution_mode": "sequential",
                    "mock_io": True,
                    "results_url": str(results / f"{index}"),
                }
                async with session.post(
                    f"{base}/", params={"matchspec": package, **query}, json=body
                ) as response:
                    return response.status, await response.json()

            for kind in KINDS:  # warm: environments installed, metadata cached
                await one(-1, kind)
            # (a work dir being removed in the background holds a descriptor meanwhile)
            await until(lambda: not run_files_left(cache / "work"), 10, "work dirs emptied")
            baseline_rss = _rss_mib(server.pid)
            baseline_fds = _fds(server.pid)

            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def limited(index: int, kind: str) -> tuple[int, dict[str, Any]]:
                async with semaphore:
                    return await one(index, kind)

            started = time.monotonic()
            answers = await asyncio.gather(*(limited(i, k) for i, k in enumerate(plan)))
            elapsed = time.monotonic() - started

        for index, (kind, (status, body)) in enumerate(zip(plan, answers, strict=True)):
            _, _, _, expected, writes_result = KINDS[kind]
            assert status == expected, (index, kind, status, body)
            result_file = results / f"{index}" / "result.json"
            assert result_file.exists() == writes_result, (index, kind)
            if kind == "ok":
                assert json.loads(result_file.read_text())["result"]["ok"] is True
                assert body["result"]["ok"] is True
            elif kind == "workflow_error":
                assert body["error"] == "bad"
            elif kind == "timeout":
                assert body["error"] == TIMEOUT_MESSAGE
            else:
                assert body["error"].startswith("The workflow exited with code 3")

        # what the runs left: no processes (once the background reaper has ended the stragglers),
        # no descriptors, no work dirs or temp files
        await until(lambda: not children_of(server.pid), 30, "no workflow processes left")
        await until(lambda: not run_files_left(cache / "work"), 10, "work dirs emptied")
        assert _fds(server.pid) == baseline_fds
        assert list((tmp_path / "tmp").iterdir()) == []
        assert _rss_mib(server.pid) < baseline_rss + 30, "memory back near where it started"
        print(f"{RUNS} runs in {elapsed:.1f}s")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
