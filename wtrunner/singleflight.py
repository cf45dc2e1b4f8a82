"""Single-flight: one coroutine per key at a time; concurrent callers share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """Deduplicates concurrent work by key (installs, solves, metadata commands).

    The work runs in its own task, so a caller that is cancelled does not cancel it for the
    others; its exception reaches every caller.
    """

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Future[Any]] = {}

    async def run(self, key: Any, start: Callable[[], Awaitable[T]]) -> T:
        """Await ``start()``, or the call already running for ``key``."""
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(start())
            self._running[key] = future
            future.add_done_callback(lambda done: self._finished(key, done))
        result: T = await asyncio.shield(future)
        return result

    def _finished(self, key: Any, future: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not future.cancelled():
            future.exception()  # mark it retrieved: every caller may have gone
