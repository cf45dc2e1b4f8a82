"""The event-loop lag monitor: the histogram in /metrics, and a stall logged with its stack.

The test and the app share one event loop, so blocking the test blocks the app.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Client, ClientFactory, until
from wtrunner.looplag import WATCHDOG_THREAD_NAME, LoopLagMonitor, innermost_frames

LAG = "wtrunner_event_loop_lag_seconds"
STALL = 0.5  # seconds: well past the 100 ms threshold plus the 100 ms interval


def block_the_loop(seconds: float) -> None:
    """What a careless handler does: blocking work on the event loop."""
    time.sleep(seconds)


async def _lag(client: Client) -> dict[str, float]:
    """The lag histogram's buckets (by ``le``) and its ``count``, from /metrics."""
    response = await client.get("/metrics")
    assert response.status == 200
    (family,) = [
        family
        for family in text_string_to_metric_families(await response.text())
        if family.name == LAG
    ]
    assert family.type == "histogram"
    found = {
        sample.labels["le"]: sample.value
        for sample in family.samples
        if sample.name == f"{LAG}_bucket"
    }
    (found["count"],) = [sample.value for sample in family.samples if sample.name == f"{LAG}_count"]
    return found


def _over_100ms(lag: dict[str, float]) -> float:
    """How many observations were over 0.1 s (buckets are cumulative)."""
    return lag["+Inf"] - lag["0.1"]


def _watchdogs() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == WATCHDOG_THREAD_NAME]


def _stall_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "wtrunner.looplag" and record.levelno == logging.WARNING
    ]


async def test_an_idle_app_exports_the_histogram_with_nothing_slow(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    lag = await until(lambda: _with_count(client, 2), timeout=30, what="two loop lag observations")
    assert set(lag) >= {"0.001", "0.1", "5.0", "+Inf", "count"}
    assert lag["+Inf"] == lag["count"]
    # generous: an idle loop wakes the monitor within a second, even on a loaded machine
    assert lag["1.0"] == lag["count"]


async def _with_count(client: Client, at_least: float) -> dict[str, float] | None:
    lag = await _lag(client)
    return lag if lag["count"] >= at_least else None


async def test_a_stall_is_observed_and_logged_with_the_blocking_function(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wtrunner.looplag")
    client = await make_client()
    before = await _lag(client)
    assert len(_watchdogs()) == 1

    block_the_loop(STALL)

    async def observed() -> dict[str, float] | None:
        lag = await _lag(client)
        more = lag["count"] > before["count"] and _over_100ms(lag) > _over_100ms(before)
        return lag if more else None

    after = await until(observed, timeout=30, what="the stall in the lag histogram")
    assert _over_100ms(after) > _over_100ms(before)
    assert after["5.0"] - before["5.0"] >= 1, "the stall was under 5 s"

    def naming_the_blocker() -> list[logging.LogRecord]:
        return [r for r in _stall_records(caplog) if "block_the_loop" in r.getMessage()]

    await until(naming_the_blocker, timeout=30, what="the stall's warning")
    (record,) = naming_the_blocker()  # one line per stall, not one per watchdog wake-up
    message = record.getMessage()
    assert "event loop stalled" in message
    (innermost, *_) = record.loop_stack  # type: ignore[attr-defined]
    assert innermost.startswith(f"{__file__}:")
    assert innermost.endswith(" block_the_loop")
    assert 0.1 < record.stall_seconds < 30  # type: ignore[attr-defined]

    await client.close()
    assert _watchdogs() == [], "the watchdog thread outlived the app"


async def test_the_watchdog_thread_stops_with_the_app(make_client: ClientFactory) -> None:
    client = await make_client()
    (thread,) = _watchdogs()
    assert thread.daemon
    await client.close()
    assert not thread.is_alive()


async def test_a_failing_observer_is_logged_and_the_monitor_still_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def observe(lag: float) -> None:
        raise RuntimeError("the histogram is broken")

    monitor = LoopLagMonitor(observe, interval=0.01)
    monitor.start()
    try:
        (record,) = await until(
            lambda: [r for r in caplog.records if r.name == "wtrunner.looplag"],
            timeout=30,
            what="the failure's log record",
        )
    finally:
        await monitor.close()
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "the histogram is broken" in str(record.exc_info[1])
    assert _watchdogs() == []


async def test_a_stall_the_watchdog_missed_is_still_logged_by_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """E.g. C code holding the GIL the whole stall: the watchdog thread could not run."""

    class Blind(LoopLagMonitor):
        def _report(self, due: float, late: float) -> None:
            pass

    lags: list[float] = []
    monitor = Blind(lags.append)
    monitor.start()
    try:
        block_the_loop(STALL)
        (record,) = await until(
            lambda: _stall_records(caplog), timeout=30, what="the task's stall warning"
        )
    finally:
        await monitor.close()
    assert "sampled no stack" in record.getMessage()
    assert 0.1 < record.stall_seconds < 30  # type: ignore[attr-defined]
    assert any(0.1 < lag < 30 for lag in lags)


async def test_closing_twice_or_unstarted_is_harmless() -> None:
    await LoopLagMonitor(lambda lag: None).close()
    monitor = LoopLagMonitor(lambda lag: None)
    monitor.start()
    await monitor.close()
    await monitor.close()
    assert _watchdogs() == []


def test_innermost_frames_name_file_line_and_function() -> None:
    def inner() -> list[str]:
        return innermost_frames(sys._getframe(), 2)

    here = inner()
    assert len(here) == 2
    assert here[0].startswith(f"{__file__}:")
    assert here[0].endswith(" inner")
    assert here[1].endswith(" test_innermost_frames_name_file_line_and_function")
    assert innermost_frames(None, 3) == []


def test_nonsense_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LoopLagMonitor(lambda lag: None, interval=0)
    with pytest.raises(ValueError):
        LoopLagMonitor(lambda lag: None, threshold=-1)


async def test_monitor_can_start_only_once() -> None:
    monitor = LoopLagMonitor(lambda lag: None)
    monitor.start()
    try:
        with pytest.raises(RuntimeError):
            monitor.start()
    finally:
        await monitor.close()
