"""The one run path: every front door hands a RunRequest here and gets a RunOutcome back.

resolve (install) -> validate params against the package's schema -> note result.json ->
take a run slot -> invoker.run / wait -> read result.json -> outcome. Nothing is spawned
before the request has been checked; slots bound how many workflows run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import AsyncIterator

from opentelemetry.context import Context
from opentelemetry.trace import StatusCode

from .errors import RunSlotsFullError, WtrunnerError
from .invokers import Completion, InvokerContext, WorkflowStartError, invoker_class
from .logs import bind_run_id
from .metadata import Metadata
from .metrics import Metrics
from .results import InvalidResultError, ResultMarker, ResultsStore, public_url
from .run_request import TIMEOUT_MESSAGE, OutcomeKind, RunOutcome, RunRequest
from .text import last_line
from .tracing import run_parent_context, tracer


class RunSlots:
    """At most ``slots`` runs at once, at most ``max_queued`` waiting; beyond that, 503."""

    def __init__(self, slots: int, max_queued: int) -> None:
        self.slots = slots
        self.max_queued = max_queued
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(slots)
        self._in_use = 0

    @property
    def in_use(self) -> int:
        """Runs holding a slot now."""
        return self._in_use

    @property
    def free(self) -> int:
        """Slots free now (what the Pub/Sub consumer may pull)."""
        return max(0, self.slots - self._in_use - self.waiting)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Hold a slot for the body; raises RunSlotsFullError when the queue is full too."""
        if self._semaphore.locked() and self.waiting >= self.max_queued:
            raise RunSlotsFullError(
                f"all {self.slots} run slots are busy and {self.waiting} requests are waiting"
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            self._semaphore.release()


class RunService:
    """Runs workflows for every front door (HTTP, Pub/Sub push and pull, the CLI)."""

    def __init__(
        self,
        context: InvokerContext,
        metadata: Metadata,
        results: ResultsStore,
        slots: RunSlots,
        metrics: Metrics,
    ) -> None:
        self.context = context
        self.metadata = metadata
        self.results = results
        self.slots = slots
        self.metrics = metrics

    async def run(
        self,
        request: RunRequest,
        span_name: str = "run",
        parent: Context | None = None,
        max_wait: float | None = None,
    ) -> RunOutcome:
        """Run ``request`` to its outcome; a request that cannot run raises WtrunnerError.

        ``max_wait`` caps the timeout of runs this process waits for (Pub/Sub's cap); a run
        handed to a back end that is not waited for keeps its own timeout.

        The run is one span named ``span_name``, a direct child of ``parent`` (by default the
        context the request's W3C values describe, else the current one), whose attributes are
        exactly ``workflow_run_id`` and ``invoker_type`` (the back end's class name) as the
        earlier implementation's clients check; the outcome is a span event, resolution and the
        process are child spans, and the workflow's TRACEPARENT points at this span.
        """
        if parent is None:
            parent = run_parent_context(request.traceparent, request.tracestate)
        cls = invoker_class(request.invoker_type)
        attributes = {"workflow_run_id": request.workflow_run_id, "invoker_type": cls.__name__}
        started = time.perf_counter()
        label = request.invoker_type
        with bind_run_id(request.run_id), tracer.start_as_current_span(
            span_name, context=parent, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:  # fmt: skip
            event = {"wtrunner.package": request.package_name, "wtrunner.run_id": request.run_id}
            try:
                outcome = await self._run(request, max_wait)
            except WtrunnerError:
                span.add_event("wtrunner.outcome", {**event, "wtrunner.outcome": "rejected"})
                span.set_status(StatusCode.ERROR, "rejected")
                self.metrics.runs_finished.labels(label, "rejected").inc()
                raise
            kind = outcome.kind.value
            span.add_event("wtrunner.outcome", {**event, "wtrunner.outcome": kind})
            if not outcome.succeeded:
                span.set_status(StatusCode.ERROR, kind)
            elapsed = time.perf_counter() - started
            self.metrics.runs_finished.labels(label, kind).inc()
            self.metrics.run_duration.labels(label, kind).observe(elapsed)
            return outcome

    async def _run(self, request: RunRequest, max_wait: float | None) -> RunOutcome:
        cls = invoker_class(request.invoker_type)
        if max_wait is not None and cls.waitable:
            request = dataclasses.replace(
                request, timeout=min(request.timeout or max_wait, max_wait)
            )
        invoker = cls(self.context, request)
        if not await invoker.is_installed():
            await invoker.install()
        if invoker.environment is not None:
            await self.metadata.validate_params(invoker.environment, request.params)
        if not invoker.is_waitable():
            self.metrics.runs_started.labels(request.invoker_type).inc()
            await invoker.run()
            return RunOutcome(OutcomeKind.ACCEPTED, result={}, job_name=invoker.job_name)

        self.results.prepare(request.results_url)
        before = await self.results.marker(request.results_url)
        async with self.slots.acquire():
            self.metrics.runs_started.labels(request.invoker_type).inc()
            try:
                await invoker.run()
            except WorkflowStartError as exc:
                return RunOutcome(OutcomeKind.CRASH, error=str(exc))
            completion = await invoker.wait()
        return await self._outcome(request, completion, before)

    async def _outcome(
        self, request: RunRequest, completion: Completion, before: ResultMarker | None
    ) -> RunOutcome:
        tail = completion.stderr_tail or None
        code = completion.exit_code
        if completion.timed_out:
            return RunOutcome(
                OutcomeKind.TIMEOUT, error=TIMEOUT_MESSAGE, trace=timeout_trace(request, tail),
                exit_code=code,
            )  # fmt: skip
        if code != 0:
            return RunOutcome(
                OutcomeKind.CRASH, error=exit_message(completion), trace=tail, exit_code=code
            )
        try:
            document = await self.results.read(request.results_url, before)
        except InvalidResultError as exc:
            error = f"The workflow wrote an unusable {exc}"
            return RunOutcome(OutcomeKind.CRASH, error=error, trace=tail, exit_code=code)
        if document is None:
            error = (
                "The workflow exited with code 0 but wrote no result.json at "
                f"{public_url(request.results_url)}"
            )
            return RunOutcome(OutcomeKind.CRASH, error=error, trace=tail, exit_code=code)
        kind = OutcomeKind.OK if document["error"] is None else OutcomeKind.WORKFLOW_ERROR
        return RunOutcome(kind, **document, exit_code=code)


def timeout_trace(request: RunRequest, stderr_tail: str | None) -> str:
    """The trace of a timed-out run: the limit and how to raise it, then the stderr tail."""
    limit = f"{request.timeout:g} s" if request.timeout is not None else "its time limit"
    line = f"The workflow timed out after {limit}; raise `timeout` or reduce the data."
    return f"{line}\n{stderr_tail}" if stderr_tail else line


def exit_message(completion: Completion) -> str:
    """``The workflow exited with code N: <last stderr line>``."""
    code = completion.exit_code
    last = last_line(completion.stderr_tail) or "no output on stderr"
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            signal_name = signal.Signals(-code).name
            return f"The workflow exited with code {code} (killed by {signal_name}): {last}"
    return f"The workflow exited with code {code}: {last}"
