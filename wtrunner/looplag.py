"""Event-loop lag: how late the loop wakes a sleeping task, and what was running when it stalled.

A task on the loop sleeps ``interval`` seconds over and over and observes how late it woke
(``max(0, actual - expected)``) in a histogram. Before each sleep it publishes when it is due
back: that is the heartbeat a watchdog thread reads. While the loop is more than ``threshold``
seconds past that time, the watchdog samples the loop thread's stack
(``sys._current_frames()``) and logs a warning naming the innermost frames, once per stall.

Cheap while the loop is healthy: one wake-up of the watchdog per interval, a float comparison,
and no stack is read. A stall the watchdog could not sample (its thread got no CPU or no GIL
before the loop resumed) is still logged, without a stack, by the task when it wakes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

WATCHDOG_THREAD_NAME = "wtrunner-loop-lag-watchdog"
DEFAULT_INTERVAL = 0.1
DEFAULT_THRESHOLD = 0.1
DEFAULT_STACK_DEPTH = 10

# The watchdog never sleeps less than this (it aims just past a threshold crossing).
_MIN_WAIT = 0.001


def innermost_frames(frame: FrameType | None, depth: int) -> list[str]:
    """``file:line function`` of the ``depth`` innermost frames from ``frame``, innermost first.

    Reads only code objects and line numbers (no source files), so it is safe and cheap to call
    from another thread.
    """
    found: list[str] = []
    while frame is not None and len(found) < depth:
        code = frame.f_code
        found.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return found


class LoopLagMonitor:
    """Measures the lag of the running event loop and reports stalls with the stack at fault.

    ``observe`` receives every lag in seconds (a Prometheus histogram's ``observe``).
    :meth:`start` on the loop to measure, :meth:`close` on the same loop to stop the task and
    join the watchdog thread.
    """

    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        interval: float = DEFAULT_INTERVAL,
        threshold: float = DEFAULT_THRESHOLD,
        stack_depth: int = DEFAULT_STACK_DEPTH,
    ) -> None:
        if interval <= 0 or threshold <= 0 or stack_depth < 1:
            raise ValueError("interval and threshold must be positive, stack_depth at least 1")
        self._observe = observe
        self.interval = interval
        self.threshold = threshold
        self.stack_depth = stack_depth
        # When the task is due back (time.monotonic()); written by the loop, read by the watchdog.
        self._due = 0.0
        # The ``_due`` of the last stall reported (by the watchdog, or by the task itself).
        self._reported_due = -1.0
        self._loop_thread_id = 0
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the measuring task on the running loop and the watchdog thread."""
        if self._task is not None:
            raise RuntimeError("the loop lag monitor is already started")
        self._loop_thread_id = threading.get_ident()
        self._due = time.monotonic() + self.interval
        self._task = asyncio.get_running_loop().create_task(
            self._measure(), name="wtrunner-loop-lag"
        )
        self._task.add_done_callback(_log_failure)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._watch, name=WATCHDOG_THREAD_NAME, daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Cancel the measuring task and stop and join the watchdog thread."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its failure, if any, is logged by _log_failure
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            # The watchdog waits on the event: it ends at once, after at most one report.
            thread.join()

    async def _measure(self) -> None:
        while True:
            due = self._due  # the first is set by start(): a stall before this task ran counts
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            woke = time.monotonic()
            self._due = woke + self.interval
            lag = max(0.0, woke - due)
            self._observe(lag)
            if lag > self.threshold and self._reported_due != due:
                self._reported_due = due
                log.warning(
                    "event loop stalled for %.3f s (threshold %.3f s); the watchdog sampled "
                    "no stack before it resumed",
                    lag,
                    self.threshold,
                    extra={"stall_seconds": round(lag, 6)},
                )

    def _watch(self) -> None:
        try:
            while True:
                due = self._due
                late = time.monotonic() - due
                if late > self.threshold and due != self._reported_due:
                    self._report(due, late)
                # Healthy, the task is at most an interval from due: wake again an interval
                # later, or just past the moment this sleep would become a stall.
                wait = self.interval if late > self.threshold else self.threshold - late
                if self._stopping.wait(max(_MIN_WAIT, min(self.interval, wait + _MIN_WAIT))):
                    return
        except Exception:
            log.exception("the event loop watchdog failed; stalls are no longer reported")

    def _report(self, due: float, late: float) -> None:
        frame = sys._current_frames().get(self._loop_thread_id)
        try:
            stack = innermost_frames(frame, self.stack_depth)
        finally:
            del frame  # a frame reference keeps every local of the loop's stack alive
        if self._due != due:
            return  # the loop resumed while the stack was read: it may be innocent code's
        self._reported_due = due
        log.warning(
            "event loop stalled for %.3f s so far (threshold %.3f s); running, innermost first: %s",
            late,
            self.threshold,
            " <- ".join(stack) or "(no Python frame)",
            extra={"stall_seconds": round(late, 6), "loop_stack": stack},
        )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the event loop lag monitor failed; loop lag is no longer measured",
            exc_info=task.exception(),
        )
