"""The local invoker's processes: timeouts end whole groups, nothing leaks, the loop stays free."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.helpers import Client, ClientFactory, SettingsFactory, post_run, run_files_left, until
from tests.processes import children_of
from wtrunner.processes import group_members
from wtrunner.run_request import TIMEOUT_MESSAGE


def _pgid_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[2])


def _open_fds() -> tuple[list[str], int]:
    """This process's descriptors that are not sockets (sorted), and how many sockets.

    The run store's SQLite files are left out: its connection pool grows with concurrency
    and keeps its connections (each holds the database, -wal and -shm files) by design.
    """
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
    sockets = sum(target.startswith("socket:") for target in targets)
    files = sorted(
        target
        for target in targets
        if not target.startswith("socket:") and "wtrunner.db" not in Path(target).name
    )
    return files, sockets


async def test_timeout_ends_the_whole_group_grandchild_included(
    client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    params = {"orphan": {"pid_file": str(pid_file), "then": "sleep", "seconds": 60}}
    run = asyncio.create_task(
        post_run(client, "wt-test-orphan-workflow", params, tmp_path / "r", query={"timeout": "2"})
    )
    grandchild = int(
        await until(lambda: pid_file.exists() and pid_file.read_text(), 30, f"{pid_file} written")
    )
    pgid = _pgid_of(grandchild)
    assert pgid != os.getpgid(0), "the workflow runs in a process group of its own"

    status, body = await run
    assert status == 500
    assert body["error"] == TIMEOUT_MESSAGE
    # at the moment of the answer, nothing of the group is left: not running, not a zombie
    assert group_members(pgid) == []
    assert not Path(f"/proc/{grandchild}").exists()


async def test_leftovers_of_a_finished_workflow_are_ended_in_the_background(
    client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    params = {"orphan": {"pid_file": str(pid_file), "then": "exit"}}
    started = time.monotonic()
    status, body = await post_run(client, "wt-test-orphan-workflow", params, tmp_path / "r")
    assert status == 200
    assert time.monotonic() - started < 20, "the answer does not wait for stragglers"
    grandchild = body["result"]["grandchild"]
    assert int(pid_file.read_text()) == grandchild
    # the grandchild ignores SIGTERM: it is killed after the grace period, and reaped
    pgid = _pgid_of_or_none(grandchild)
    await until(lambda: not group_members(pgid), 30, f"process group {pgid} ended and reaped")
    assert not Path(f"/proc/{grandchild}").exists()


def _pgid_of_or_none(pid: int) -> int:
    try:
        return _pgid_of(pid)
    except FileNotFoundError:
        return -1


async def test_megabytes_of_output_neither_deadlock_nor_fill_memory(
    client: Client, tmp_path: Path
) -> None:
    def rss_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    before = rss_kib()
    status, body = await post_run(
        client, "wt-test-chatty-workflow", {"chatter": {"megabytes": 25}}, tmp_path / "r"
    )
    assert status == 200, body
    assert body["result"] == {"bytes_per_stream": 25 * 1024 * 1024}
    grown_mib = (rss_kib() - before) / 1024
    assert grown_mib < 25, f"50 MiB of output must not be held in memory (grew {grown_mib:.0f})"


async def test_output_tail_is_bounded(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, "wt-test-crash-workflow", {}, tmp_path / "r")
    assert status == 500
    assert len(body["trace"]) <= 16 * 1024


@pytest.mark.parametrize("runs", [20])
async def test_concurrent_runs_overlap_and_health_stays_prompt(
    make_client: ClientFactory, tmp_path: Path, runs: int
) -> None:
    client = await make_client(max_concurrent_runs=runs)
    # warm the environment so the figure is about running, not installing
    await post_run(client, "wt-test-trivial-workflow", {}, tmp_path / "warm")

    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            response = await client.get("/")
            assert response.status == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(
            post_run(
                client, "wt-test-trivial-workflow", {"sleep": {"seconds": 1}}, tmp_path / f"r{i}"
            )
            for i in range(runs)
        )
    )
    elapsed = time.monotonic() - started
    done.set()
    await prober
    assert [status for status, _ in outcomes] == [200] * runs
    assert elapsed < runs / 2, f"{runs} one-second runs took {elapsed:.1f}s: they did not overlap"
    assert len(latencies) > 10
    assert max(latencies) < 1.0, "the event loop stayed responsive while the runs were in flight"


async def test_many_runs_leak_no_fds_temp_files_or_processes(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings(max_concurrent_runs=8, kill_grace_seconds=0.5)
    client = await make_client(settings)
    await post_run(client, "wt-test-trivial-workflow", {}, tmp_path / "warm")
    await post_run(client, "wt-test-crash-workflow", {}, tmp_path / "warm-crash")
    work = settings.cache_dir / "work"
    # (a work dir being removed in the background holds a descriptor meanwhile)
    await until(lambda: not run_files_left(work), 10, "work dirs emptied")
    files_before, sockets_before = _open_fds()
    children_before = set(children_of(os.getpid()))  # e.g. a session's emulator

    semaphore = asyncio.Semaphore(10)

    async def one(index: int) -> int:
        async with semaphore:
            if index % 4 == 3:
                status, _ = await post_run(client, "wt-test-crash-workflow", {}, tmp_path / "c")
            else:
                params = {"n": index}
                status, _ = await post_run(
                    client, "wt-test-trivial-workflow", params, tmp_path / f"r{index}"
                )
            return status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses.count(200) == 150 and statuses.count(500) == 50

    await until(lambda: not run_files_left(work), 10, "work dirs emptied")
    assert set(children_of(os.getpid())) <= children_before
    files_after, sockets_after = _open_fds()
    assert files_after == files_before, "files, pipes and other descriptors all closed"
    # HTTP keep-alive: at most the client's 10 pooled connections, both ends in this process
    assert sockets_after <= sockets_before + 20
