"""Helpers for tests that start real processes: free ports, waiting for a server to answer,
calling it and stopping it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tests.helpers import NOWHERE_STORES, LiveServer


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


def kill_server(process: subprocess.Popen[bytes]) -> None:
    """Kill a server outright (SIGKILL: no shutdown, as when its node fails) and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def stop_server(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop a server as Kubernetes would (SIGTERM), killing it if it has not exited within
    ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(work: Path, channel: Path, **settings: str) -> Iterator[LiveServer]:
    """``wtrunner serve`` on ``channel`` (and ``settings``, variable name -> value) for the
    block, its results confined to ``work / "results"``, its log in ``work / "server.log"``;
    stopped with :func:`stop_server` at the end."""
    with (work / "server.log").open("wb") as log:
        process, url = start_server(
            work,
            stderr=log,
            WTRUNNER_CHANNELS=channel.as_uri(),
            WTRUNNER_RESULTS_ROOTS=str(work / "results"),
            WTRUNNER_KILL_GRACE_SECONDS="0.2",
            # cloud stores point at a closed local port: nothing may leave this machine
            WTRUNNER_OBJECT_STORE_OPTIONS=json.dumps(NOWHERE_STORES),
            **settings,
        )
    try:
        yield LiveServer(url, work / "results")
    finally:
        stop_server(process)


def call_json(url: str, data: dict[str, Any] | None = None) -> Any:
    """GET ``url``, or POST ``data`` to it as JSON; the JSON answer. Blocking, for tests that
    drive a server process without an event loop."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it is true; fail with ``what`` once ``timeout`` seconds have
    passed. Blocking, for tests without an event loop (async ones use
    :func:`tests.helpers.until`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


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
