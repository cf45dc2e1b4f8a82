"""The pull consumer: RunWorkflow messages from a subscription, run in the app's event loop.

It pulls only as many messages as there are free run slots, keeps extending the ack deadline
of every message it holds while its run lasts, acks when the run is done (success, or a failure
retrying cannot fix), nacks (deadline 0) what should be retried, and survives the Pub/Sub
service going away (retries with backoff, reports in ``/readyz``, keeps HTTP serving). On
shutdown it stops pulling, lets runs finish within the drain time, then nacks what is left so
another replica takes it.

Pulls are never abandoned by a client-side timeout shorter than the server's long poll: an
abandoned pull on Google's emulator swallows the next message until its ack deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..backoff import Backoff
from ..metrics import Metrics
from ..readiness import Readiness
from ..runs import RunSlots
from ..settings import Settings
from ..text import first_line
from .processing import Disposition, PubSubRunner

log = logging.getLogger(__name__)

PULL_TIMEOUT_SECONDS = 120  # longer than the ~90 s a pull on an empty subscription is held
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
CAPACITY_RECHECK_SECONDS = 1.0


@dataclass
class ConsumerStats:
    """What the consumer did (tests, metrics and /readyz read it)."""

    received: int = 0
    acked: int = 0
    nacked: int = 0
    duplicates: int = 0
    pull_failures: int = 0
    peak_in_flight: int = 0


class PullConsumer:
    """Pulls one subscription; see the module docstring. Lifecycle: ``start``,
    ``begin_shutdown`` (stop pulling, start the drain clock), ``close`` (drain, nack, stop)."""

    def __init__(
        self,
        settings: Settings,
        runner: PubSubRunner,
        slots: RunSlots,
        readiness: Readiness,
        client: Any,
        metrics: Metrics,
    ) -> None:
        self.subscription = settings.pubsub_subscription
        self.lease_seconds = settings.pubsub_lease_seconds
        self.drain_seconds = settings.pubsub_drain_seconds
        self.capacity = min(settings.pubsub_max_messages or slots.slots, slots.slots)
        self.runner = runner
        self.slots = slots
        self.readiness = readiness
        self.client = client  # gcloud.aio.pubsub.SubscriberClient
        self.metrics = metrics
        self.stats = ConsumerStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[str] = set()  # ack ids of the messages whose runs are in flight
        self._capacity_changed = asyncio.Event()
        self._pulling: asyncio.Task[None] | None = None
        self._leasing: asyncio.Task[None] | None = None
        self._drain_deadline: float | None = None

    def start(self) -> None:
        """Start pulling and leasing in the background."""
        loop = asyncio.get_running_loop()
        self._pulling = loop.create_task(self._pull_loop(), name="pubsub-pull")
        self._leasing = loop.create_task(self._lease_loop(), name="pubsub-lease")
        self._report("starting")

    def begin_shutdown(self) -> None:
        """Stop pulling; runs in flight get ``WTRUNNER_PUBSUB_DRAIN_SECONDS`` from now."""
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + self.drain_seconds
        if self._pulling is not None:
            self._pulling.cancel()
        self._report("draining")

    async def close(self) -> None:
        """Drain, nack what is left (so another replica runs it), stop, close the client."""
        self.begin_shutdown()
        assert self._drain_deadline is not None
        if self._pulling is not None:
            await asyncio.gather(self._pulling, return_exceptions=True)
        pending = set(self._tasks)
        if pending:
            timeout = max(0.0, self._drain_deadline - time.monotonic())
            _, pending = await asyncio.wait(pending, timeout=timeout)
        if pending:
            log.warning("%d Pub/Sub runs did not finish in the drain time: nacking", len(pending))
            await self._modify(list(self._held), 0)
            self._count("nacked", len(self._held))
            self._held.clear()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._leasing is not None:
            self._leasing.cancel()
            await asyncio.gather(self._leasing, return_exceptions=True)
        await self.client.close()
        self._report("stopped")

    # --- pulling ----------------------------------------------------------------------------

    def _available(self) -> int:
        return min(self.capacity - len(self._tasks), self.slots.free)

    async def _pull_loop(self) -> None:
        backoff = Backoff(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)
        while True:
            available = self._available()
            if available <= 0:
                self._capacity_changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._capacity_changed.wait(), CAPACITY_RECHECK_SECONDS)
                continue
            try:
                messages = await self.client.pull(
                    self.subscription, available, timeout=PULL_TIMEOUT_SECONDS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.pull_failures += 1
                self.metrics.pubsub_pull_failures.inc()
                delay = backoff.next_delay()
                log.warning("pulling %s failed (%s); retrying in %.1fs", self.subscription,
                            _describe(exc), delay)  # fmt: skip
                self._report("error", error=_describe(exc), retry_in_seconds=round(delay, 1))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self._report("ok")
            if messages:
                ack_ids = [message.ack_id for message in messages]
                self._held.update(ack_ids)
                await self._modify(ack_ids, self.lease_seconds)
                for message in messages:
                    self._start_handling(message)

    def _start_handling(self, message: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self._tasks.add(task)
        self.stats.received += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, len(self._tasks))
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._capacity_changed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("handling a Pub/Sub message failed", exc_info=task.exception())

    async def _handle(self, message: Any) -> None:
        try:
            disposition = await self.runner.process(
                lambda: message.data or b"", message.message_id, "pubsub-pull"
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Pub/Sub message %s failed unexpectedly; nacking", message.message_id)
            disposition = Disposition("retry")
        if message.ack_id not in self._held:
            return  # already nacked by the drain
        self._held.discard(message.ack_id)
        if disposition.duplicate or disposition.status == "duplicate":
            self._count("duplicate")
        if disposition.ack:
            await self._acknowledge([message.ack_id])
        else:
            await self._modify([message.ack_id], 0)
            self._count("nacked")

    # --- leases and acks ----------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            if self._held:
                await self._modify(list(self._held), self.lease_seconds)

    async def _modify(self, ack_ids: list[str], seconds: float) -> None:
        """Set the ack deadline of ``ack_ids`` (0 = nack); one by one if the batch fails."""
        if not ack_ids:
            return
        deadline = round(seconds)
        try:
            await self.client.modify_ack_deadline(self.subscription, ack_ids, deadline)
        except Exception as exc:
            if len(ack_ids) == 1:
                log.warning("modifying an ack deadline failed: %s", _describe(exc))
                return
            for ack_id in ack_ids:
                await self._modify([ack_id], seconds)

    async def _acknowledge(self, ack_ids: Iterable[str]) -> None:
        ack_ids = list(ack_ids)
        try:
            await self.client.acknowledge(self.subscription, ack_ids)
            self._count("acked", len(ack_ids))
        except Exception as exc:  # the message comes back later and is seen as a duplicate
            log.warning("acknowledging failed: %s", _describe(exc))

    def _count(self, outcome: str, messages: int = 1) -> None:
        """Count messages acked, nacked or seen as duplicates (stats and metrics)."""
        field = {"acked": "acked", "nacked": "nacked", "duplicate": "duplicates"}[outcome]
        setattr(self.stats, field, getattr(self.stats, field) + messages)
        self.metrics.pubsub_messages.labels(outcome).inc(messages)

    def _report(self, status: str, **details: Any) -> None:
        self.readiness.report(
            "pubsub",
            status=status,
            subscription=self.subscription,
            in_flight=len(self._tasks),
            **details,
        )


def _describe(exc: BaseException) -> str:
    text = first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
