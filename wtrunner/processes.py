"""Processes in a process group of their own, and ending them without leaving anything.

Every workflow process starts a new session (so its process group is its own), writes its
output to files (never an undrained pipe), and is ended group-wide: SIGTERM, a grace period,
SIGKILL, and a bounded reap. wtrunner registers itself as a child subreaper on Linux, so what a
workflow leaves behind is re-parented to wtrunner rather than to an init that may never reap it,
and the group checks below reap those orphans once they are dead.

A process that leaves its group (``setsid``, a double fork) is still the run's:

- in the run's cgroup v2 leaf, where the server may make one (:mod:`wtrunner.cgroups`);
- below the workflow by parent links (a snapshot of /proc taken before a run is ended);
- among the orphans the server adopted as subreaper, by the ``WTRUNNER_RUN_ID=<id>`` the run's
  processes inherit in their environment.

Each is ended with the same SIGTERM, grace, SIGKILL. When a workflow exits by itself, a cheap
check (the group, the leaf, the server's own children) says whether anything of it is left;
only then is /proc scanned, in a worker thread, in the background. The limits of this: without
a cgroup, a process that both clears its environment and leaves the workflow's tree (its parent
exits) before the run ends is not found; and a process forked in the first milliseconds, before
the workflow is moved into its leaf, is found only the same ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, Protocol

from .cgroups import RunCgroup, RunCgroups, RunLimits
from .handoff import handoff, handoff_detached
from .proctree import (
    ProcStat,
    descendants,
    marker_value,
    own_children,
    process_table,
    read_stat,
    reap,
)

try:
    import resource
except ImportError:  # pragma: no cover - not a POSIX system
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_POLL_FIRST = 0.01
_POLL_MAX = 0.2
REAP_SECONDS = 5.0
# SIGKILL rounds at most: each also ends what appeared during the one before
KILL_ROUNDS = 3


class _Adoption:
    """What this process knows of its children (one process, one set of children)."""

    # whether orphaned descendants come to this process (Linux, PR_SET_CHILD_SUBREAPER)
    subreaper: ClassVar[bool] = False
    # the children spawn() started, until they have been reaped: any other child was
    # adopted (an orphan) or started by other code, and nothing else waits for it
    spawned: ClassVar[dict[int, Child]] = {}
    # other children looked at, by (pid, start time): the run id their environment carries
    # ("" for none); what a process started with does not change
    others: ClassVar[dict[tuple[int, int], str]] = {}


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library (Linux), for calls the standard library lacks or makes holding the GIL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); returns whether it worked. Idempotent."""
    libc = _libc()
    if libc is None:
        return False
    try:
        done = bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except AttributeError:
        return False
    _Adoption.subreaper = _Adoption.subreaper or done
    return done


def sweep() -> None:
    """Reap the adopted orphans that have died (killed with a run's cgroup, say)."""
    children = own_children()
    if children is not None:
        other_children(children)


def other_children(children: Iterable[int]) -> list[tuple[int, str]]:
    """Among ``children`` (this process's), the live ones spawn() did not start, with the run
    id each carries ("" for none). Dead ones of other sessions — orphans adopted from runs,
    which nothing else waits for — are reaped on the way. Cheap once each has been seen."""
    spawned = _Adoption.spawned
    for pid in [pid for pid, process in spawned.items() if process.returncode is not None]:
        del spawned[pid]
    my_session = os.getsid(0)
    found = []
    seen = set()
    for pid in children:
        if pid in spawned:
            continue
        stat = read_stat(pid)
        if stat is None:
            continue
        if stat.dead:
            if stat.sid != my_session:
                reap(pid)
            continue
        seen.add(stat.identity)
        run_id = _Adoption.others.get(stat.identity)
        if run_id is None:
            run_id = _Adoption.others[stat.identity] = marker_value(pid, RUN_ID_VARIABLE) or ""
        found.append((pid, run_id))
    for identity in [identity for identity in _Adoption.others if identity not in seen]:
        del _Adoption.others[identity]
    return found


def group_members(pgid: int) -> list[ProcStat]:
    """Processes whose process group is ``pgid`` (zombies included), from /proc."""
    return [stat for stat in process_table().values() if stat.pgid == pgid]


def _reap_if_adopted(stat: ProcStat) -> None:
    """Reap ``stat``'s process if it is a dead child of this process that nothing else waits
    for (an orphan adopted from a run; spawn()'s own children are reaped by their waiters,
    which keep their exit codes)."""
    if stat.dead and stat.ppid == os.getpid() and stat.pid not in _Adoption.spawned:
        reap(stat.pid)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs; dead orphans of ours are reaped (not
    a child spawn() started: its own waiter reaps it, and keeps its exit code)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    alive = False
    for member in group_members(pgid):
        _reap_if_adopted(member)
        alive = alive or not member.dead
    return alive


RUN_ID_VARIABLE = "WTRUNNER_RUN_ID"


def kill_orphaned_runs(run_ids: Collection[str]) -> set[str]:
    """SIGKILL what runs of a stopped server left: every process carrying
    ``WTRUNNER_RUN_ID=<one of run_ids>`` in its environment, with its process group (a reused
    pid never ends a stranger: only a process carrying the marker names a group); the ids of
    the runs found. Reads the environment of every process: for start-up, not for each run."""
    wanted = set(run_ids)
    if not wanted:
        return set()
    try:
        table = process_table()
    except OSError:
        return set()
    found = set()
    own_group = os.getpgid(0)
    for stat in table.values():
        if stat.dead or stat.pid == os.getpid():
            continue
        run_id = marker_value(stat.pid, RUN_ID_VARIABLE)
        if run_id in wanted:
            if stat.pgid != own_group:
                _signal_group(stat.pgid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(stat.pid, signal.SIGKILL)
            found.add(run_id)
    return found


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


class Child(Protocol):
    """A started child process: its pid, its exit code once reaped, and a way to wait."""

    @property
    def pid(self) -> int:
        """The process id."""

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: killed by that signal) once the child has been reaped."""

    async def wait(self) -> int:
        """Wait until the child exits and is reaped; its exit code."""


class WatchedChild:
    """A child started by :func:`subprocess.Popen`, whose exit the event loop learns from a
    pidfd (Linux 5.3+): no watcher thread and no subprocess transport per child. Where there
    is no pidfd, a worker thread waits for it instead."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        """Watch ``popen`` (just started) from the running loop."""
        self._popen = popen
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        try:
            pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # no pidfd here: a thread waits
            waiting = self._loop.run_in_executor(None, popen.wait)
            waiting.add_done_callback(self._waited)
            return
        self._loop.add_reader(pidfd, self._reap, pidfd)

    @property
    def pid(self) -> int:
        """The process id."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once reaped (negative: killed by that signal)."""
        return self._popen.returncode

    async def wait(self) -> int:
        """Wait until the child has exited and been reaped; its exit code."""
        return await asyncio.shield(self._exited)

    def _reap(self, pidfd: int) -> None:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        code = self._popen.poll()  # the pidfd is readable: the child has exited
        self._exited.set_result(code if code is not None else self._popen.wait())

    def _waited(self, waiting: asyncio.Future[int]) -> None:
        if waiting.cancelled() or waiting.exception() is not None:
            self._exited.set_result(self._popen.poll() or 0)
        else:
            self._exited.set_result(waiting.result())


@dataclass
class GroupProcess:
    """A child process that leads its own process group, and what else tracks its run: the
    ``WTRUNNER_RUN_ID`` its processes carry (``run_id``) and its cgroup leaf."""

    process: Child
    run_id: str | None = None
    cgroup: RunCgroup | None = None

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

    def leftovers(self) -> bool:
        """Whether anything of the run may still be running once the leader has exited:
        its group, its cgroup leaf, or an adopted orphan carrying its run id. Cheap (no scan of
        /proc unless the group is alive); an empty leaf is removed on the way, in a worker
        thread (its rmdir waited for the kernel's cgroup lock, 0.7 ms a run in a stream of them)."""
        if self.returncode is None or group_alive(self.pgid):
            return True
        if self.cgroup is not None:
            if self.cgroup.populated():
                return True
            handoff_detached(self.cgroup.remove)  # (it logs what goes wrong)
            self.cgroup = None
        children = own_children()
        if children is None:  # the kernel cannot tell cheaply: look in the background
            return self.run_id is not None
        return any(run_id == self.run_id for _, run_id in other_children(children))

    async def end(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """End the run's processes: SIGTERM, up to ``grace`` seconds, SIGKILL, bounded reap.

        The group, the cgroup leaf, and what left both (found in a snapshot of /proc taken
        first, in a worker thread). Setting ``hurry`` or cancelling cuts the grace period
        short; everything is still killed and reaped before this returns (or re-raises the
        cancellation).
        """
        tracked: set[tuple[int, int]] = set()
        try:
            tracked = await _in_thread(self._find)
            self._signal(tracked, signal.SIGTERM)
            await _until(lambda: self.returncode is not None and self._gone(tracked), grace, hurry)
        except asyncio.CancelledError:
            await self._kill_and_reap(tracked)
            raise
        await self._kill_and_reap(tracked)

    def _find(self) -> set[tuple[int, int]]:
        """The run's live processes (pid, start time) as /proc shows them now: the leader,
        its group, its leaf, the orphans carrying its run id (all processes of the system
        when this process is no subreaper), and everything below them. Dead ones of ours are
        reaped. Blocking: a worker thread runs it."""
        try:
            table = process_table()
        except OSError:
            return set()
        me = os.getpid()
        seeds = {pid for pid, stat in table.items() if stat.pgid == self.pgid}
        if self.returncode is None:  # not reaped yet: the pid is still the leader's
            seeds.add(self.pgid)
        cgroup = self.cgroup  # the loop may drop it meanwhile
        if cgroup is not None:
            seeds.update(cgroup.pids())
        if self.run_id is not None:
            spawned = _Adoption.spawned
            candidates = (
                [pid for pid, stat in table.items() if stat.ppid == me and pid not in spawned]
                if _Adoption.subreaper
                else list(table)
            )
            seeds.update(
                pid for pid in candidates if marker_value(pid, RUN_ID_VARIABLE) == self.run_id
            )
        seeds.discard(me)
        live = set()
        for pid in descendants(table, seeds) - {me}:
            stat = table[pid]
            if not stat.dead:
                live.add(stat.identity)
            _reap_if_adopted(stat)
        return live

    def _signal(self, tracked: Iterable[tuple[int, int]], signum: int) -> None:
        """Send ``signum`` to the group, the leaf and each tracked process still the same."""
        # SIGKILL only to a group still there (once empty, its number may be another's)
        if signum != signal.SIGKILL or self.returncode is None or group_alive(self.pgid):
            _signal_group(self.pgid, signum)
        if self.cgroup is not None:
            if signum == signal.SIGKILL:
                self.cgroup.kill()
            else:
                self.cgroup.signal(signum)
        for pid, started in tracked:
            stat = read_stat(pid)
            if stat is not None and stat.starttime == started and not stat.dead:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)

    def _gone(self, tracked: Iterable[tuple[int, int]]) -> bool:
        """Whether nothing of the run is alive; dead orphans of ours are reaped."""
        alive = False
        for pid, started in tracked:
            stat = read_stat(pid)
            if stat is None or stat.starttime != started:
                continue
            if stat.dead:
                _reap_if_adopted(stat)
                continue
            alive = True
        if alive or group_alive(self.pgid):
            return False
        return self.cgroup is None or not self.cgroup.populated()

    async def _kill_and_reap(self, tracked: set[tuple[int, int]]) -> None:
        for _ in range(KILL_ROUNDS):
            self._signal(tracked, signal.SIGKILL)
            if not await self.wait(REAP_SECONDS):
                log.error("process %s did not exit after SIGKILL", self.pgid)
            if not await _until(functools.partial(self._gone, tracked), REAP_SECONDS):
                log.error("processes of group %s still live after SIGKILL", self.pgid)
            # what the run started or the server adopted meanwhile
            more = await _in_thread(self._find) - tracked
            if not more:
                break
            tracked |= more
        sweep()
        self.release()

    def release(self) -> None:
        """Remove the run's cgroup leaf (once nothing is in it)."""
        if self.cgroup is not None:
            if self.cgroup.remove():
                self.cgroup = None
            else:
                log.error("the cgroup %s still holds processes", self.cgroup.path)


async def _in_thread(function: Callable[[], set[tuple[int, int]]]) -> set[tuple[int, int]]:
    # the loop's own executor: usable while the calling task is being cancelled
    return await asyncio.get_running_loop().run_in_executor(None, function)


async def spawn(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    run_id: str | None = None,
    limits: RunLimits | None = None,
    prepare: Callable[[], RunCgroup | None] | None = None,
) -> GroupProcess:
    """Start ``argv`` in a new session (its own process group) with exactly ``env``, stdin
    from /dev/null and its output to ``stdout`` and ``stderr`` (files or pipe ends); OSError if
    it cannot be started.

    The child is made in a worker thread (with vfork where CPython can: the parent waits until
    the child has called exec, which on a loaded machine takes as long as the child waits for a
    CPU; the event loop does not wait with it), gets its ``limits`` and its cgroup leaf there at
    once (its niceness, and what the leaf does not enforce as rlimits), and is watched through a
    pidfd. A run's process carries ``run_id`` (``env`` has it as ``WTRUNNER_RUN_ID``).

    ``prepare``, when given, runs first in that same thread (what the child needs on disk, made
    in the same hand-off) and returns the cgroup leaf to start it in (None: none); what it
    raises is raised. A caller cancelled meanwhile still waits for the thread, and a child
    started for nobody is ended.
    """

    def start() -> tuple[subprocess.Popen[bytes], RunCgroup | None]:
        leaf = prepare() if prepare is not None else None
        enforced = leaf.enforced if leaf is not None else set()
        popen = _start(argv, env, cwd, stdout, stderr, limits, enforced)
        if leaf is not None:
            # at once, in this thread: handed over separately, the move waited behind the other
            # starts of a burst and a 1-s run could end before it was in its leaf
            leaf.add(popen.pid)
        return popen, leaf

    starting = handoff(start)
    try:
        popen, leaf = await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.wait({starting})
        if not starting.cancelled() and starting.exception() is None:
            _abandon(starting.result()[0])
        raise
    return _tracked(WatchedChild(popen), run_id, leaf)


def _start(
    argv: Sequence[str | Path],
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    limits: RunLimits | None,
    enforced: Iterable[str],
) -> subprocess.Popen[bytes]:
    popen = subprocess.Popen(
        [str(arg) for arg in argv],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    if limits is not None:
        apply_limits(popen.pid, limits, enforced)
    return popen


def _abandon(popen: subprocess.Popen[bytes]) -> None:
    """End and reap a child that was started for a caller who is gone."""
    _signal_group(popen.pid, signal.SIGKILL)
    WatchedChild(popen)  # reaps it


async def spawn_with_pipes(
    argv: Sequence[str | Path], *, env: Mapping[str, str], cwd: Path
) -> tuple[GroupProcess, asyncio.subprocess.Process]:
    """Start ``argv`` like :func:`spawn`, with stdin, stdout and stderr as asyncio pipes (for
    short commands whose output is their answer); the group, and the asyncio process."""
    process = await asyncio.create_subprocess_exec(
        *[str(arg) for arg in argv],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    return _tracked(process, None, None), process


def _tracked(child: Child, run_id: str | None, cgroup: RunCgroup | None) -> GroupProcess:
    _Adoption.spawned[child.pid] = child
    return GroupProcess(child, run_id=run_id, cgroup=cgroup)


def apply_limits(pid: int, limits: RunLimits, enforced: Iterable[str] = ()) -> None:
    """Give process ``pid`` its niceness and the ``limits`` a cgroup does not ``enforce``:
    memory as RLIMIT_AS (address space, not resident memory), processes as RLIMIT_NPROC (which
    counts every process of the user, and does not bind root). Its children inherit them."""
    if limits.nice:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # never above the server's own priority (raising it needs a privilege)
            nice = max(limits.nice, os.getpriority(os.PRIO_PROCESS, pid))
            _set_autogroup_priority(pid, nice)  # first: see _set_priority
            _set_priority(pid, nice)
    if resource is None or not hasattr(resource, "prlimit"):
        return
    wanted = []
    if limits.memory_max is not None and "memory" not in enforced:
        wanted.append((resource.RLIMIT_AS, limits.memory_max))
    if limits.pids_max is not None and "pids" not in enforced:
        wanted.append((resource.RLIMIT_NPROC, limits.pids_max))
    for which, value in wanted:
        try:
            _, hard = resource.prlimit(pid, which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)  # only ever lowered
            resource.prlimit(pid, which, (value, value))
        except ProcessLookupError:
            return
        except (OSError, ValueError) as exc:
            log.warning("could not limit process %s: %s", pid, exc)


def _set_priority(pid: int, nice: int) -> None:
    """``os.setpriority`` of process ``pid``, without holding the GIL where it can.

    Right after a child's setsid the kernel gives it a scheduler autogroup of its own, and
    the first change of its priority then sleeps (about 0.7 ms on these machines, with little
    CPU; 0.05 ms when the autogroup's niceness was set first): through ``os.setpriority``,
    which keeps the GIL, the event loop would wait with it for each run started. A call
    through ctypes lets go of the GIL meanwhile.
    """
    libc = _libc()
    if libc is None:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        return
    if libc.setpriority(os.PRIO_PROCESS, pid, nice) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))  # ProcessLookupError, PermissionError, ...


def _set_autogroup_priority(pid: int, nice: int) -> None:
    """The niceness of the scheduler autogroup of process ``pid`` (a session leader), where the
    kernel has autogroups and will take it.

    With autogroups (``/proc/sys/kernel/sched_autogroup_enabled``), tasks of the root CPU
    cgroup are scheduled one session against another: a process's own niceness only orders
    it within its session, and a workflow in a session of its own would get the CPU as much as
    the whole server. Its session's autogroup yields too. The kernel refuses a change within
    0.1 s of another one unless the server may administer the system (EAGAIN): that run then
    competes as an equal, as everywhere autogroups are off.
    """
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as autogroup:
        autogroup.write(f"{nice}\n")


class GroupReaper:
    """Cleans up after finished workflows in the background: ends whatever they left running
    and removes their work dirs; owns the cgroup directory of the server's runs (None where it
    may not make one).

    Tasks are held by strong references; ``close()`` cuts every grace period short (SIGKILL)
    and waits for them all.
    """

    def __init__(self, grace: float, cgroups: RunCgroups | None = None) -> None:
        self.grace = grace
        self.cgroups = cgroups
        self._tasks: set[asyncio.Future[None]] = set()
        self._hurry = asyncio.Event()

    def _hold(self, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def remove_later(self, directory: Path) -> None:
        """Remove ``directory`` (a finished run's work dir) in a worker thread: nobody waits
        for it, and whatever it holds is gone before ``close()`` returns."""
        self._hold(handoff(shutil.rmtree, directory, True))

    def schedule(self, process: GroupProcess) -> bool:
        """End what is left of ``process``'s run in the background, if anything is; whether
        anything was."""
        if not process.leftovers():
            return False
        self._hold(asyncio.get_running_loop().create_task(self._end(process)))
        return True

    async def _end(self, process: GroupProcess) -> None:
        try:
            log.info("ending processes left behind by group %s", process.pgid)
            await process.end(self.grace, self._hurry)
        except Exception:
            log.exception("ending process group %s failed", process.pgid)

    async def close(self) -> None:
        """Kill and reap every group still pending, without waiting out grace periods; remove
        the runs' cgroup directory."""
        self._hurry.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.cgroups is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.cgroups.close)


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
