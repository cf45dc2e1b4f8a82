"""A cgroup v2 leaf per local run, where the server may make one: a run's processes stay
countable, limitable and killable together whatever sessions or groups they make.

At start-up the server looks up its own cgroup (``/proc/self/cgroup``, the cgroup2 mount in
``/proc/self/mountinfo``) and tries to make a directory there for its runs,
``wtrunner-<pid>-<start>-<n>``; where that is refused (a read-only cgroupfs in a container,
another user's cgroup, cgroup v1 only, ``WTRUNNER_RUN_CGROUPS=off``) runs are tracked by
process group and /proc alone. Each run gets a leaf ``run-<id>`` below it. A workflow is moved
into its leaf right after it starts (a worker thread writes ``cgroup.procs``: moving a process
takes the kernel several milliseconds), so what it forks from then on is inside; what it forked
in the first instants is found through /proc (see :mod:`wtrunner.processes`).

Limits: ``memory.max`` and ``pids.max`` are written into each leaf when the ``memory`` and
``pids`` controllers can be enabled for it (the server's cgroup must offer them and hold no
processes of its own, or be the root cgroup); otherwise the limits fall back to rlimits.
Leaves and directories of servers that died are killed and removed at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .proctree import read_stat
from .settings import Settings

log = logging.getLogger(__name__)

_PREFIX = "wtrunner-"
_COUNTER = itertools.count(1)
STALE_KILL_POLLS = 100


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits (None: none): bytes of memory and number of processes (threads count);
    and the niceness the run's processes get (0: the server's own)."""

    memory_max: int | None = None
    pids_max: int | None = None
    nice: int = 0

    @classmethod
    def of(cls, settings: Settings) -> RunLimits:
        """``WTRUNNER_RUN_MEMORY_MAX``, ``WTRUNNER_RUN_PIDS_MAX`` and ``WTRUNNER_RUN_NICE``."""
        memory = int(settings.run_memory_max) if settings.run_memory_max else None
        return cls(memory, settings.run_pids_max, settings.run_nice)

    def controllers(self) -> set[str]:
        """The cgroup controllers these limits need."""
        wanted = set()
        if self.memory_max is not None:
            wanted.add("memory")
        if self.pids_max is not None:
            wanted.add("pids")
        return wanted


@dataclass
class RunCgroup:
    """One run's leaf cgroup; ``enforced`` names the limits its files hold (the others are
    left to rlimits)."""

    path: Path
    enforced: frozenset[str] = frozenset()

    def add(self, pid: int) -> bool:
        """Move process ``pid`` into the leaf (blocking for milliseconds: call it in a thread);
        False when it could not be moved (it has exited already, or the kernel refused)."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except ProcessLookupError:
            return False
        except OSError as exc:
            log.warning("could not move process %s into %s: %s", pid, self.path, exc)
            return False
        return True

    def pids(self) -> list[int]:
        """The processes in the leaf now."""
        try:
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def populated(self) -> bool:
        """Whether any live process is in the leaf (exited ones are not)."""
        try:
            events = (self.path / "cgroup.events").read_text()
        except OSError:
            return False
        return "populated 1" in events.splitlines()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process in the leaf."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self) -> None:
        """SIGKILL everything in the leaf at once (``cgroup.kill``; each process on kernels
        before 5.14, which lack it)."""
        try:
            (self.path / "cgroup.kill").write_text("1\n")
        except FileNotFoundError:
            if self.path.exists():
                self.signal(signal.SIGKILL)
        except OSError as exc:
            log.warning("cgroup.kill of %s failed: %s", self.path, exc)
            self.signal(signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the leaf; False while processes are still in it."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("could not remove %s: %s", self.path, exc)
            return False
        return True


class RunCgroups:
    """The server's cgroup directory for its runs; :meth:`leaf` makes one run's leaf."""

    def __init__(self, path: Path, limits: RunLimits, enforced: frozenset[str]) -> None:
        self.path = path
        self.limits = limits
        self.enforced = enforced

    @classmethod
    def create(cls, settings: Settings) -> RunCgroups | None:
        """The directory for this server's runs, or None where it may not make one
        (blocking: call it in a thread)."""
        if settings.run_cgroups == "off" or not sys.platform.startswith("linux"):
            return None
        own = own_cgroup_dir()
        if own is None:
            return None
        remove_stale(own)
        limits = RunLimits.of(settings)
        wanted = limits.controllers()
        me = read_stat(os.getpid())
        path = own / f"{_PREFIX}{os.getpid()}-{me.starttime if me else 0}-{next(_COUNTER)}"
        try:
            path.mkdir()
        except OSError as exc:
            log.info("runs are tracked without cgroups (%s is not writable: %s)", own,
                     exc.strerror or exc)  # fmt: skip
            return None
        enforced: frozenset[str] = frozenset()
        if wanted:
            _enable(own, wanted)
            enforced = frozenset(_enable(path, wanted))
            left = wanted - enforced
            if left:
                log.info("cgroup controllers %s are not available in %s: those limits are "
                         "rlimits", ", ".join(sorted(left)), own)  # fmt: skip
        log.info("each run gets a cgroup under %s", path)
        return cls(path, limits, enforced)

    def leaf(self, name: str) -> RunCgroup | None:
        """Make the leaf ``name`` with the limits it can enforce; None if the kernel refuses
        (the run is then tracked without it). Blocking: on a busy machine a cgroup's mkdir can take
        a long time, so runs make theirs in a worker thread."""
        path = self.path / name
        try:
            path.mkdir()
            if "memory" in self.enforced and self.limits.memory_max is not None:
                (path / "memory.max").write_text(f"{self.limits.memory_max}\n")
            if "pids" in self.enforced and self.limits.pids_max is not None:
                (path / "pids.max").write_text(f"{self.limits.pids_max}\n")
        except FileExistsError:
            pass
        except OSError as exc:
            log.warning("could not make the cgroup %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return RunCgroup(path, self.enforced)

    def close(self) -> None:
        """Kill what is left in the leaves and remove them and the directory (blocking)."""
        _kill_and_remove(self.path)


def own_cgroup_dir() -> Path | None:
    """Where this process's cgroup v2 directory is mounted, if it is."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    for line in mountinfo:
        before, _, after = line.partition(" - ")
        if not after.startswith("cgroup2 "):
            continue
        fields = before.split()
        root, mount_point = fields[3], fields[4]
        if relative == root or relative.startswith(root.rstrip("/") + "/"):
            inside = relative[len(root.rstrip("/")) :].lstrip("/")
            return Path(mount_point) / inside
    return None


def _enable(path: Path, wanted: set[str]) -> set[str]:
    """Enable the ``wanted`` controllers for the children of ``path`` where it offers them;
    those enabled now."""
    try:
        offered = set((path / "cgroup.controllers").read_text().split())
        enabled = set((path / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()
    for controller in (wanted & offered) - enabled:
        try:
            (path / "cgroup.subtree_control").write_text(f"+{controller}\n")
        except OSError as exc:  # EBUSY: the cgroup holds processes of its own
            log.info("cannot enable the %s controller in %s: %s", controller, path,
                     exc.strerror or exc)  # fmt: skip
        else:
            enabled.add(controller)
    return enabled & wanted


def remove_stale(own: Path) -> None:
    """Kill and remove the run directories of servers that are gone (their pid no longer
    names a process started at the recorded time)."""
    try:
        entries = [entry for entry in own.iterdir() if entry.name.startswith(_PREFIX)]
    except OSError:
        return
    for entry in entries:
        parts = entry.name[len(_PREFIX) :].split("-")
        try:
            pid, start = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            continue
        owner = read_stat(pid)
        if owner is None or owner.starttime != start:
            log.warning("ending what a stopped server left in %s", entry)
            _kill_and_remove(entry)


def _kill_and_remove(directory: Path) -> None:
    leaves = []
    with contextlib.suppress(OSError):
        leaves = [entry for entry in directory.iterdir() if entry.is_dir()]
    for leaf in leaves:
        cgroup = RunCgroup(leaf)
        if cgroup.populated():
            cgroup.kill()
            for _ in range(STALE_KILL_POLLS):  # a second at most: SIGKILL is prompt
                if not cgroup.populated():
                    break
                time.sleep(0.01)
        cgroup.remove()
    with contextlib.suppress(OSError):
        directory.rmdir()
