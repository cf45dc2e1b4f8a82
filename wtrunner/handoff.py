"""Short blocking steps of the run path, handed to a few worker threads of their own.

Starting a workflow with its files, moving it into its cgroup leaf, noting and reading its
``result.json`` and removing its work dir block (on the disk, on fork and exec), so they
leave the event loop. They go to ``HANDOFF_THREADS`` threads of their own rather than to the
loop's default executor:

- few threads: during a burst every thread with work wants the GIL, and the event loop waits
  its turn behind each of them. Measured with 64 runs posted at once on two cores: ``GET /``
  had a p99 of about 62 ms with the default executor's six threads, 26-32 ms with two;
- their own: the default executor's threads may block for long (DNS lookups; a child waited
  for where the kernel has no pidfd), which must not hold up the start of a run.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

HANDOFF_THREADS = 2

_executor = ThreadPoolExecutor(HANDOFF_THREADS, thread_name_prefix="wtrunner-handoff")


def handoff(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``function(*args)`` in one of the run path's worker threads; its result, to await (or
    to hold: it runs to its end even if nobody awaits it)."""
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(_executor, functools.partial(function, *args))
