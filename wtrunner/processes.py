"""Processes in a process group of their own, and ending whole groups without leaving anything.

Every workflow process starts a new session (so its process group is its own), writes its
output to files (never an undrained pipe), and is ended group-wide: SIGTERM, a grace period,
SIGKILL, and a bounded reap. wtrunner registers itself as a child subreaper on Linux, so what a
workflow leaves behind is re-parented to wtrunner rather than to an init that may never reap it,
and the group checks below reap those orphans once they are dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_POLL_FIRST = 0.01
_POLL_MAX = 0.2
REAP_SECONDS = 5.0


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); returns whether it worked. Idempotent."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class GroupMember:
    """One process of a process group, as /proc shows it."""

    pid: int
    ppid: int
    state: str


def group_members(pgid: int) -> list[GroupMember]:
    """Processes whose process group is ``pgid`` (zombies included), from /proc."""
    members = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as file:
                    stat = file.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid:
                members.append(GroupMember(int(entry.name), int(fields[1]), fields[0].decode()))
    return members


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs; dead orphans of ours are reaped."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    alive = False
    me = os.getpid()
    for member in group_members(pgid):
        if member.state in ("Z", "X"):
            if member.ppid == me:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(member.pid, os.WNOHANG)
        else:
            alive = True
    return alive


RUN_ID_VARIABLE = "WTRUNNER_RUN_ID"


def kill_orphaned_run(pgid: int, run_id: str) -> bool:
    """SIGKILL process group ``pgid`` if a live member carries ``WTRUNNER_RUN_ID=<run_id>`` in
    its environment (so a reused pid never ends a stranger); whether it did."""
    marker = f"{RUN_ID_VARIABLE}={run_id}".encode()
    for member in group_members(pgid):
        if member.state in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{member.pid}/environ", "rb") as file:
                variables = file.read().split(b"\0")
        except OSError:
            continue
        if marker in variables:
            _signal_group(pgid, signal.SIGKILL)
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _until(
    condition: Callable[[], bool], timeout: float, hurry: asyncio.Event | None = None
) -> bool:
    """Poll ``condition()`` with backoff until it holds, ``timeout`` passes or ``hurry`` is set."""
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST
    while True:
        if condition():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (hurry is not None and hurry.is_set()):
            return False
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)


@dataclass
class GroupProcess:
    """A child process that leads its own process group."""

    process: asyncio.subprocess.Process

    @property
    def pgid(self) -> int:
        """The process group id (the leader's pid)."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The leader's exit code once it has been reaped."""
        return self.process.returncode

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the leader to exit; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def end(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """End the whole group: SIGTERM, up to ``grace`` seconds, SIGKILL, bounded reap.

        Setting ``hurry`` or cancelling cuts the grace period short; the group is still killed
        and reaped before this returns (or re-raises the cancellation).
        """
        pgid = self.pgid
        _signal_group(pgid, signal.SIGTERM)
        try:
            await _until(
                lambda: self.returncode is not None and not group_alive(pgid), grace, hurry
            )
        except asyncio.CancelledError:
            await self._kill_and_reap()
            raise
        await self._kill_and_reap()

    async def _kill_and_reap(self) -> None:
        pgid = self.pgid
        if self.returncode is None or group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        if not await self.wait(REAP_SECONDS):
            log.error("process %s did not exit after SIGKILL", pgid)
        if not await _until(lambda: not group_alive(pgid), REAP_SECONDS):
            log.error("process group %s still has live processes after SIGKILL", pgid)


async def spawn(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    stdin: int = asyncio.subprocess.DEVNULL,
) -> GroupProcess:
    """Start ``argv`` in a new session (its own process group) with exactly ``env``."""
    process = await asyncio.create_subprocess_exec(
        *[str(arg) for arg in argv],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    return GroupProcess(process)


class GroupReaper:
    """Ends in the background whatever finished workflows left running in their groups.

    Tasks are held by strong references; ``close()`` cuts every grace period short (SIGKILL).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._tasks: set[asyncio.Task[None]] = set()
        self._hurry = asyncio.Event()

    def schedule(self, process: GroupProcess) -> None:
        """End ``process``'s group in the background if anything of it still runs."""
        if not group_alive(process.pgid):
            return
        task = asyncio.get_running_loop().create_task(self._end(process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end(self, process: GroupProcess) -> None:
        log.info("ending processes left behind in group %s", process.pgid)
        try:
            await process.end(self.grace, self._hurry)
        except Exception:
            log.exception("ending process group %s failed", process.pgid)

    async def close(self) -> None:
        """Kill and reap every group still pending, without waiting out grace periods."""
        self._hurry.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def read_tail(file: IO[bytes], limit: int) -> str:
    """The last ``limit`` bytes of an open file, from a line start when possible, as text.

    Reading the open file (not its path) works even when its directory was removed meanwhile.
    """
    try:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - limit))
        data = file.read(limit)
    except OSError:
        return ""
    if size > limit and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    return data.decode(errors="replace")


def wtrunner_command() -> list[str]:
    """The argv prefix that runs the installed ``wtrunner`` command in a child process.

    The console script next to this interpreter when there is one, else this interpreter with
    the current directory taken off ``sys.path`` — never ``python -m wtrunner``, which would
    import a ``wtrunner/`` directory that happens to be in the current directory.
    """
    script = Path(sys.executable).parent / "wtrunner"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; sys.path[:] = [p for p in sys.path if p != '']; sys.argv[0] = 'wtrunner'; "
        "from wtrunner.cli import run; run()",
    ]
