"""Faults: unwritable or full disks, a workflow killed from outside, the cache removed mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Client, ClientFactory, SettingsFactory, post_run, run_files_left, until
from wtrunner.keys import ENVIRONMENTS

TRACKS = "wt-example-tracks-workflow"
TRACKS_PARAMS = {"workflow_details": {"name": "faults"}, "get_fixes": {}}


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "256k") -> Iterator[Path]:
    """A size-limited tmpfs at ``path`` (needs mount rights: skipped otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to simulate a full disk: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    with contextlib.suppress(OSError), (directory / "filler").open("wb") as file:
        while True:
            file.write(b"x" * 65536)
            file.flush()


async def test_results_dir_that_cannot_be_written(client: Client, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the results directory should be")
    status, body = await post_run(client, TRACKS, TRACKS_PARAMS, blocker / "results")
    # refused before anything runs: the results directory cannot be created there
    assert status == 422, body
    assert body["detail"][0]["loc"] == ["body", "results_url"]
    assert blocker.read_text().startswith("a file")


async def test_full_results_disk_is_a_clean_workflow_failure(
    client: Client, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "results-disk") as disk:
        _fill(disk)
        status, body = await post_run(client, TRACKS, TRACKS_PARAMS, disk / "run-1")
    assert status == 500
    assert "No space left on device" in body["trace"]
    assert body["error"].startswith("The workflow exited with code 1")


async def test_full_cache_disk_is_503_and_leaves_nothing(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "cache-disk", size="16m") as disk:
        settings = make_settings(cache_dir=disk / "cache")
        client = await make_client(settings)
        status, _ = await post_run(client, TRACKS, TRACKS_PARAMS, tmp_path / "r0")
        assert status == 200  # installed while there was room
        _fill(disk)
        status, body = await post_run(client, TRACKS, TRACKS_PARAMS, tmp_path / "r1")
        assert status == 503, body
        # the run store or the work dir, whichever the full disk refuses first
        assert any(
            reason in body["detail"] for reason in ("No space left on device", "disk is full")
        ), body
        work = settings.cache_dir / "work"
        await until(lambda: not run_files_left(work), 10, "work dirs emptied")
        (disk / "filler").unlink()
        status, _ = await post_run(client, TRACKS, TRACKS_PARAMS, tmp_path / "r2")
        assert status == 200, "it recovers once there is room again"
        await client.close()


def _workflow_pid(runs_dir: Path) -> int | None:
    """The pid of the workflow running in a work dir (``run-*``) under ``runs_dir``."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    cwd = Path(os.readlink(f"/proc/{entry.name}/cwd"))
                    if cwd.parent == runs_dir and cwd.name.startswith("run-"):
                        return int(entry.name)
    return None


async def test_workflow_killed_by_a_signal(
    client: Client, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    runs_dir = client.app[ENVIRONMENTS].settings.cache_dir / "work"
    run = asyncio.create_task(
        post_run(client, "wt-test-slow-workflow", {"sleep": {"seconds": 30}}, tmp_path / "r")
    )
    pid = await until(lambda: _workflow_pid(runs_dir), 30, "the workflow process")
    os.kill(pid, signal.SIGKILL)
    status, body = await run
    assert status == 500
    assert body["error"].startswith("The workflow exited with code -9 (killed by SIGKILL)")


async def test_cache_removed_while_a_run_is_in_flight(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    client = await make_client(settings)
    run = asyncio.create_task(
        post_run(client, "wt-test-slow-workflow", {"sleep": {"seconds": 1}}, tmp_path / "r1")
    )
    await until(lambda: _workflow_pid(settings.cache_dir / "work"), 30, "the workflow process")
    shutil.rmtree(settings.cache_dir)
    status, body = await run
    # it ends cleanly: its result, or (when it had not loaded its code yet) its own error
    assert (status, body["result"]) == (200, {"slept": 1.0}) or (
        status == 500 and body["error"].startswith("The workflow exited with code")
    ), body
    assert _workflow_pid(settings.cache_dir / "work") is None

    installs = client.app[ENVIRONMENTS].stats.installs
    status, body = await post_run(
        client, "wt-test-slow-workflow", {"sleep": {"seconds": 0}}, tmp_path / "r2"
    )
    assert (status, body["result"]) == (200, {"slept": 0.0})
    assert client.app[ENVIRONMENTS].stats.installs == installs + 1, "the next one reinstalls"
