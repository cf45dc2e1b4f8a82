"""The worker threads of the run path: one, and a spare one while steps queue up."""

from __future__ import annotations

import asyncio
import threading

from tests.helpers import until
from wtrunner.handoff import Workers


async def test_one_thread_takes_a_stream_of_steps() -> None:
    workers = Workers(2, "test-stream")
    try:
        names = [await workers.run(lambda: threading.current_thread().name) for _ in range(20)]
        assert set(names) == {"test-stream-0"} and workers.threads == 1
    finally:
        await asyncio.to_thread(workers.shutdown)


async def test_a_spare_thread_helps_while_steps_queue_up_then_ends() -> None:
    workers = Workers(2, "test-burst", backlog=1)
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait()

    try:
        blocked = workers.run(hold)
        await until(started.is_set, 5, "the first thread to take the first step")
        assert workers.threads == 1
        queued = [workers.run(lambda: threading.current_thread().name) for _ in range(3)]
        # the first thread is held: a spare one takes what waits
        done, _ = await asyncio.wait(queued, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert {step.result() for step in done} == {"test-burst-1"}
        release.set()
        assert await blocked is True
        await asyncio.gather(*queued)
        await until(lambda: workers.threads == 1, 5, "the spare thread to end with nothing left")
        assert await workers.run(lambda: threading.current_thread().name) == "test-burst-0"
    finally:
        release.set()
        await asyncio.to_thread(workers.shutdown)


async def test_a_failing_step_raises_where_it_is_awaited() -> None:
    workers = Workers(1, "test-fail")
    try:

        def fail() -> None:
            raise ValueError("no")

        try:
            await workers.run(fail)
        except ValueError as exc:
            assert str(exc) == "no"
        else:
            raise AssertionError("no exception")
        assert workers.run_detached(lambda: 7).result(timeout=5) == 7
    finally:
        await asyncio.to_thread(workers.shutdown)
