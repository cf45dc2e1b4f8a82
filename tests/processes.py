"""Helpers for tests that start real processes: free ports, waiting for a server to answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first.

    Blocking, for fixtures and helpers that are not coroutines; async tests wait for anything
    else with :func:`tests.helpers.until`.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def start_server(
    work: Path,
    *,
    stderr: int | IO[bytes] = subprocess.PIPE,
    port: int | None = None,
    **settings: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """``wtrunner serve`` as a real process on ``port`` (default: a free one), answering;
    (process, base URL).

    Its environment is minimal: PATH, HOME and WTRUNNER_CACHE_DIR under ``work``, then
    ``settings`` (variable name -> value). stdout is discarded; stderr as given (a pipe that
    ``communicate()`` reads, by default).
    """
    port = free_port() if port is None else port
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "WTRUNNER_CACHE_DIR": str(work / "cache"),
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "wtrunner", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    wait_until_answering(f"http://127.0.0.1:{port}/livez", process)
    return process, f"http://127.0.0.1:{port}"


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (zombies included), from /proc."""
    children = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[1]) == pid:
                children.append(int(entry.name))
    return children
