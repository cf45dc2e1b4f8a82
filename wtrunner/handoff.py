"""Short blocking steps, handed from the event loop to a few worker threads of their own.

Starting a workflow with its files, moving it into its cgroup leaf, noting and reading its
``result.json`` and emptying its work dir block (on the disk, on fork and exec), so they
leave the event loop. They go to ``HANDOFF_THREADS`` threads of their own rather than to the
loop's default executor:

- few threads: during a burst every thread with work wants the GIL, and the event loop waits
  its turn behind each of them. Measured with 64 runs posted at once on two cores: ``GET /``
  had a p99 of about 62 ms with the default executor's six threads, 26-32 ms with two. And
  only one unless steps queue up: in a steady stream of runs a second thread made the threads
  and the loop hand the GIL to each other more often (the server's CPU time per run 0.6-0.9 ms
  higher), while in a burst it starts the runs sooner. So a second thread is started while
  steps queue up, and ends as soon as none is waiting. Cleanup after a run (emptying its work
  dir, removing its cgroup leaf) has a thread of its own: queued before the read of the run's
  ``result.json``, it made every run's answer later;
- their own: the default executor's threads may block for long (DNS lookups; a child waited
  for where the kernel has no pidfd), which must not hold up the start of a run.

:class:`Workers` is also what the SQLite run store runs its units of work in. It is not a
``ThreadPoolExecutor``: a step handed over and back through ``loop.run_in_executor`` cost
about 85 µs of CPU time on these machines (its Python-level semaphore and conditions, the
concurrent future chained to an asyncio one), through a ``queue.SimpleQueue`` and
``call_soon_threadsafe`` about 42 µs, and a run makes half a dozen such steps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

HANDOFF_THREADS = 2
# steps waiting for a thread that make a spare one start (it ends when none is left)
SPARE_THREAD_BACKLOG = 4

# (loop, future, function, args): the future is an asyncio one on that loop, or with no loop a
# concurrent one; None tells a thread to stop
_Item = tuple[
    asyncio.AbstractEventLoop | None,
    "asyncio.Future[Any] | concurrent.futures.Future[Any]",
    Callable[..., Any],
    tuple[Any, ...],
]


class Workers:
    """Up to ``count`` threads that run what the event loop hands them, in order of arrival: one
    (started on first use), and spare ones while more than ``backlog`` steps wait (each ends
    when it finds none waiting). A step always runs to its end, even if whoever awaited it was
    cancelled."""

    def __init__(self, count: int, name: str, backlog: int = SPARE_THREAD_BACKLOG) -> None:
        self.count = count
        self.name = name
        self.backlog = backlog
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._names = itertools.count()

    @property
    def threads(self) -> int:
        """How many threads there are now."""
        return len(self._threads)

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``function(*args)`` in one of the threads; its result (or exception), to await."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((loop, future, function, args))
        return future

    def run_detached(self, function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """``function(*args)`` in one of the threads, for work nobody on the event loop waits
        for: the loop is not woken when it ends. Its future can be waited for (at shutdown)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put((None, future, function, args))
        return future

    def _put(self, item: _Item) -> None:
        self._queue.put(item)
        backlog = self._queue.qsize() > self.backlog
        if not self._threads or (backlog and len(self._threads) < self.count):
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            if len(self._threads) < self.count:
                first = not self._threads
                thread = threading.Thread(
                    target=self._work, args=(first,), name=f"{self.name}-{next(self._names)}",
                    daemon=True,
                )  # fmt: skip
                self._threads.append(thread)
                thread.start()

    def _work(self, first: bool) -> None:
        while True:
            try:
                item = self._queue.get() if first else self._queue.get_nowait()
            except queue.Empty:  # a spare thread with nothing left to do: it ends
                with self._lock:
                    if self._queue.empty():
                        with contextlib.suppress(ValueError):  # (shutdown took the list)
                            self._threads.remove(threading.current_thread())
                        return
                continue
            if item is None:
                return
            loop, future, function, args = item
            try:
                result, failure = function(*args), None
            except BaseException as exc:  # handed to whoever waits, as run_in_executor does
                result, failure = None, exc
            if isinstance(future, concurrent.futures.Future):
                if failure is None:
                    future.set_result(result)
                else:
                    future.set_exception(failure)
            elif loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                    loop.call_soon_threadsafe(_settle, future, result, failure)

    def shutdown(self) -> None:
        """Let the threads finish what they were handed, then stop them (blocks)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()


def _settle(future: asyncio.Future[Any], result: Any, failure: BaseException | None) -> None:
    if future.cancelled():
        return
    if failure is None:
        future.set_result(result)
    else:
        future.set_exception(failure)


_workers = Workers(HANDOFF_THREADS, "wtrunner-handoff")
# cleanup after runs: never in the way of a step someone awaits
_cleanup = Workers(1, "wtrunner-cleanup")


def handoff(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``function(*args)`` in one of the run path's worker threads; its result, to await (or
    to hold: it runs to its end even if nobody awaits it)."""
    return _workers.run(function, *args)


def handoff_detached(function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
    """``function(*args)`` in a worker thread of its own, for work nobody on the event loop
    waits for (see :meth:`Workers.run_detached`): cleanup after a run, which must not delay
    the next step someone awaits (the run's ``result.json`` is read right after it)."""
    return _cleanup.run_detached(function, *args)
