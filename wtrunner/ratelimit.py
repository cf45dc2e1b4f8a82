"""A client-side rate limit for calls to an API: at most ``rate`` calls a second, in asyncio.

:class:`RateLimiter` spaces calls out (the generic cell rate algorithm, a token bucket that
hands out reservations): each :meth:`~RateLimiter.acquire` takes the next free slot and sleeps
until it comes, so concurrent callers are served in the order they asked, ``1 / rate`` seconds
apart once ``burst`` calls have gone through at once. No lock and no background task: taking a
slot is one synchronous step on the event loop. The clock and the sleep can be given, so the
limiter's arithmetic is checked without waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """At most ``rate`` calls a second on average, ``burst`` of them at once.

    ``clock`` is a monotonic clock in seconds and ``sleep`` an asyncio sleep (both the real
    ones unless given). A caller cancelled while it waits gives its slot up to nobody: the
    limit errs on the slow side.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of calls a second, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next_free = -math.inf  # when the slot after the last one taken comes

    def reserve(self) -> float:
        """Take the next slot; how many seconds from now it comes (0.0: at once)."""
        now = self._clock()
        slot = max(self._next_free, now)
        self._next_free = slot + self.interval
        return max(0.0, slot - now - (self.burst - 1) * self.interval)

    async def acquire(self) -> None:
        """Wait for the next slot (returns at once while calls are under the limit)."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)
