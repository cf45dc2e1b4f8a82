"""Processes as Linux's /proc shows them: identity, parentage, session, environment marker.

What a run leaves behind is found here when it has left its process group (``setsid``, a
double fork): by parent links down from the workflow, among the orphans the server adopted as
child subreaper, and by the run's marker variable in a process's environment. A process is
named by its pid *and* start time, so a pid the system reused never stands for another.
Reading /proc is blocking work: callers that scan it whole do so in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

PROC = "/proc"


@dataclass(frozen=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says of one process (state ``Z``: a zombie)."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    starttime: int

    @property
    def identity(self) -> tuple[int, int]:
        """(pid, start time): one process, never a later one with the same pid."""
        return (self.pid, self.starttime)

    @property
    def dead(self) -> bool:
        """Whether it has exited (a zombie waiting to be reaped, or going away)."""
        return self.state in ("Z", "X")


def read_stat(pid: int) -> ProcStat | None:
    """The process ``pid`` as /proc shows it now, or None when there is none."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return ProcStat(
            pid=pid,
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            state=fields[0].decode(),
            starttime=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def process_table() -> dict[int, ProcStat]:
    """Every process /proc shows now, by pid (a few milliseconds per hundred processes)."""
    table = {}
    with os.scandir(PROC) as entries:
        for entry in entries:
            if entry.name.isdigit():
                stat = read_stat(int(entry.name))
                if stat is not None:
                    table[stat.pid] = stat
    return table


def descendants(table: dict[int, ProcStat], roots: Iterable[int]) -> set[int]:
    """``roots`` and every process below them by parent links in ``table``."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: set[int] = set()
    pending = [pid for pid in roots if pid in table]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return found


def marker_value(pid: int, name: str) -> str | None:
    """The value of variable ``name`` among those process ``pid`` started with; None when it
    has none, or its environment cannot be read (gone, a zombie, another user's)."""
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as file:
            variables = file.read()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for variable in variables.split(b"\0"):
        if variable.startswith(prefix):
            return variable[len(prefix) :].decode(errors="replace")
    return None


def own_children() -> list[int] | None:
    """This process's children, as its main thread's ``children`` file lists them (orphans a
    child subreaper adopts go to the main thread); None where the kernel has no such file."""
    me = os.getpid()
    try:
        with open(f"{PROC}/{me}/task/{me}/children", "rb") as file:
            return [int(pid) for pid in file.read().split()]
    except FileNotFoundError:
        return None
    except OSError:
        return None


def reap(pid: int) -> None:
    """Collect the exit status of child ``pid`` if it has exited (never blocks)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
