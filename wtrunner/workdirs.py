"""The work dirs of local runs (``<cache>/work``), emptied after a run and kept for the next.

A run's work dir holds its params file and its ``TMPDIR``. Making a fresh one for every run and
removing it afterwards made new files cost more and more on some file systems: ext4 without a
journal (the root file system of the machines this was measured on) does not reuse an inode
freed within the last minutes, and finds a free one by skipping each of those, so every file
or directory the server made got slower the more runs had finished lately. Under a stream of
runs, creating directories and files became the largest part of the server's CPU time per run.

So a finished run's dir is emptied instead, in a worker thread that wakes nobody on the event
loop: what the workflow left in it is deleted, its params file is truncated (the next run
writes into the same file) and ``tmp/`` is kept, empty. It then waits, as ``idle-<hex>``, for
the next run, which renames it to its own name. At most ``keep`` dirs wait; the rest, and a dir
that could not be emptied, are removed as before. A dir whose run left processes behind is
not reused (they might still write into it). What a server that did not shut down left (kept
dirs, its lost runs' dirs) is taken over or removed when the next one starts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import secrets
import shutil
from collections.abc import Collection
from pathlib import Path

from .handoff import handoff_detached
from .settings import Settings

log = logging.getLogger(__name__)

PARAMS_FILE = "params.json"
TMP_DIR = "tmp"
# the work dir's and tmp/'s mode (given back at reuse: a workflow may have taken it away)
DIR_MODE = 0o700


def work_root(settings: Settings) -> Path:
    """``<cache>/work``: where the processes a server starts get their work dirs."""
    return settings.cache_dir / "work"


class WorkDirs:
    """The work dirs under ``root``: made or reused for a run (:meth:`make`, in the thread that
    starts it), emptied and kept after it (:meth:`give_back`)."""

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep
        # emptied dirs; filled by worker threads, taken on the event loop (deque is thread-safe)
        self._idle: collections.deque[Path] = collections.deque()
        self._emptying: set[concurrent.futures.Future[None]] = set()

    def recover(self, lost_run_ids: Collection[str]) -> None:
        """At start-up, what a server that stopped without shutting down left under ``root``:
        its emptied dirs are kept for reuse (those beyond ``keep`` removed), the dirs of its
        runs now lost (their processes ended) removed. Blocks on the disk: call it in a
        worker thread."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith("idle-") and len(self._idle) < self.keep:
                self._idle.append(Path(entry.path))
            elif entry.name.startswith("idle-") or _run_of(entry.name) in lost_run_ids:
                shutil.rmtree(entry.path, ignore_errors=True)

    def take(self) -> Path | None:
        """An emptied dir for the next run, or None (then :meth:`make` makes a fresh one)."""
        try:
            return self._idle.popleft()
        except IndexError:
            return None

    def make(self, run_dir: Path, idle: Path | None) -> None:
        """``run_dir`` with an empty ``tmp/``: ``idle`` (from :meth:`take`) renamed, else a new
        directory. Blocks on the disk: call it in a worker thread."""
        if idle is not None:
            try:
                os.rename(idle, run_dir)
            except OSError as exc:  # someone removed it meanwhile: make a new one
                log.warning("could not reuse the work dir %s: %s", idle, exc)
            else:
                (run_dir / TMP_DIR).mkdir(DIR_MODE, exist_ok=True)
                return
        run_dir.mkdir(DIR_MODE, parents=True)
        (run_dir / TMP_DIR).mkdir(DIR_MODE)

    def put_back(self, idle: Path) -> None:
        """Return a dir from :meth:`take` that no run used."""
        self._idle.appendleft(idle)

    def give_back(self, run_dir: Path) -> None:
        """Empty a finished run's dir and keep it for another run, in a worker thread (nobody
        waits for it; :meth:`close` does)."""
        self._emptying = {future for future in self._emptying if not future.done()}
        emptying = handoff_detached(self._empty_and_keep, run_dir)
        emptying.add_done_callback(_log_failure)
        self._emptying.add(emptying)

    def _empty_and_keep(self, run_dir: Path) -> None:
        if len(self._idle) < self.keep:
            idle = self.root / f"idle-{secrets.token_hex(4)}"
            try:
                _empty(run_dir)
                os.rename(run_dir, idle)
            except OSError as exc:
                log.info("removing the work dir %s instead of reusing it: %s", run_dir, exc)
            else:
                self._idle.append(idle)
                return
        shutil.rmtree(run_dir, ignore_errors=True)

    async def close(self) -> None:
        """Wait for the dirs being emptied, then remove every kept one."""
        if self._emptying:
            await asyncio.wait([asyncio.wrap_future(future) for future in self._emptying])
        self._emptying.clear()
        idle, self._idle = list(self._idle), collections.deque()
        await asyncio.to_thread(_remove_all, idle)


def run_dir_name(run_id: str) -> str:
    """The name of a work dir of run ``run_id`` (unique: a run may be started again)."""
    return f"run-{run_id}-{secrets.token_hex(4)}"


def _run_of(name: str) -> str | None:
    """The run id in a work dir's name (:func:`run_dir_name`), None for another name."""
    prefix, _, suffix = name.rpartition("-")
    if not prefix.startswith("run-") or len(suffix) != 8:
        return None
    return prefix.removeprefix("run-")


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("emptying a work dir failed", exc_info=future.exception())


def _empty(run_dir: Path) -> None:
    """Delete what a run left in ``run_dir`` but its params file (truncated) and ``tmp/``
    (emptied); symbolic links are removed, never followed. OSError if something stays."""
    os.chmod(run_dir, DIR_MODE)
    for entry in os.scandir(run_dir):
        if entry.name == PARAMS_FILE and entry.is_file(follow_symlinks=False):
            os.truncate(entry.path, 0)
        elif entry.name == TMP_DIR and entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, DIR_MODE)
            for inner in os.scandir(entry.path):
                _remove(inner)
        else:
            _remove(entry)


def _remove_all(directories: list[Path]) -> None:
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


def _remove(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)
