"""The one run path: every front door hands a RunRequest here and gets a RunOutcome back.

resolve (install) -> validate params against the package's schema -> note result.json ->
take a run slot -> invoker.run / wait -> read result.json -> outcome. Nothing is spawned
before the request has been checked; slots bound how many workflows run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
from opentelemetry.trace import StatusCode

from .auth.identity import current_client_name, may_see
from .backoff import Backoff
from .errors import RunSlotsFullError, ServiceUnavailableError, WtrunnerError
from .invokers import Completion, Invoker, InvokerContext, WorkflowStartError, invoker_class
from .job_tracking import JobTracker
from .logs import bind_run_id
from .metadata import Metadata
from .metrics import Metrics
from .processes import kill_orphaned_runs
from .results import InvalidResultError, ResultMarker, ResultsStore, public_url
from .run_request import (
    CANCELLED_MESSAGE,
    LOST_MESSAGE,
    TIMEOUT_MESSAGE,
    OutcomeKind,
    RunOutcome,
    RunRequest,
)
from .run_states import InvalidTransition, RunState
from .runlogs import logs_dir
from .runstore import (
    DuplicateRun,
    FrontDoor,
    NewRun,
    ResolvedPackage,
    RunOutcomeRecord,
    RunRecord,
    RunStore,
)
from .text import last_line
from .tracing import run_parent_context, tracer

log = logging.getLogger(__name__)

FINAL_POLL_SECONDS = 1.0
DUPLICATE_WAIT_STEP_SECONDS = 60.0
CLAIM_TRIES = 3


class RunConflict(WtrunnerError):
    """A run id (``workflow_run_id`` or Idempotency-Key) already names another request (409)."""

    status = 409


def _key_name(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"workflow_run_id {value!r}" if kind == "run" else f"Idempotency-Key {value!r}"


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

    async def take_free(self) -> bool:
        """Take a slot at once if one is free and nobody waits for one (else False); it is
        held until :meth:`acquire` is entered with ``held=True`` and left, or :meth:`give_back`."""
        if self._semaphore.locked() or self.waiting:
            return False
        await self._semaphore.acquire()  # a free slot: this does not suspend
        self._in_use += 1
        return True

    def give_back(self) -> None:
        """Free a slot taken by :meth:`take_free`."""
        self._in_use -= 1
        self._semaphore.release()

    @contextlib.asynccontextmanager
    async def acquire(
        self, cancelled: asyncio.Event | None = None, held: bool = False
    ) -> AsyncIterator[bool]:
        """Hold a slot for the body (it gets True); raises RunSlotsFullError when the queue is
        full too. If ``cancelled`` is set while waiting, the body runs at once without a slot
        (it gets False). ``held``: the caller took its slot already (:meth:`take_free`)."""
        if held:
            try:
                yield True
            finally:
                self.give_back()
            return
        if self._semaphore.locked() and self.waiting >= self.max_queued:
            raise RunSlotsFullError(
                f"all {self.slots} run slots are busy and {self.waiting} requests are waiting"
            )
        self.waiting += 1
        try:
            granted = await self._wait_for_slot(cancelled)
        finally:
            self.waiting -= 1
        if not granted:
            yield False
            return
        self._in_use += 1
        try:
            yield True
        finally:
            self.give_back()

    async def _wait_for_slot(self, cancelled: asyncio.Event | None) -> bool:
        if cancelled is None:
            await self._semaphore.acquire()
            return True
        acquiring = asyncio.ensure_future(self._semaphore.acquire())
        giving_up = asyncio.ensure_future(cancelled.wait())
        try:
            await asyncio.wait({acquiring, giving_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            giving_up.cancel()
            if not acquiring.done():
                acquiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
        return not acquiring.cancelled()


@dataclass
class _Prepared:
    """A checked request, its invoker installed, ready to be recorded and run."""

    request: RunRequest
    invoker: Invoker
    before: ResultMarker | None = None
    # a run slot was free when the run was recorded: it holds it, and was recorded running
    holds_slot: bool = False


class RunService:
    """Runs workflows for every front door (HTTP, Pub/Sub push and pull, the CLI), and is the
    only writer of their records in the run store.

    A request is checked first (MatchSpec resolved and installed, params against the package's
    schema, results location): what fails there raises WtrunnerError and records nothing. Then
    the run is recorded (``running`` when a slot is free, else ``queued`` until one is;
    ``submitted`` for a back end that is not waited for) and ends in the final state of its
    outcome.

    A run is recorded for the authenticated caller of the context it starts in (its
    ``client``: :func:`~wtrunner.auth.identity.current_client_name`, set by the front door);
    a key naming a run that caller may not see is a conflict.
    """

    def __init__(
        self,
        context: InvokerContext,
        metadata: Metadata,
        results: ResultsStore,
        slots: RunSlots,
        metrics: Metrics,
        store: RunStore,
        replica: str,
    ) -> None:
        self.context = context
        self.metadata = metadata
        self.results = results
        self.slots = slots
        self.metrics = metrics
        self.store = store
        self.replica = replica
        # cancel signals of the runs this process is running, by run id
        self._cancels: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[RunOutcome]] = set()
        # set when a run of this process has recorded its end (long polls wait on it)
        self._ended: dict[str, asyncio.Event] = {}
        # the final writes not yet done, by run id: a run's outcome is answered without
        # waiting for its write; reads of that run on this replica wait for it (settled)
        self._final_writes: dict[str, asyncio.Task[None]] = {}
        self._final_writes_by_key: dict[str, asyncio.Task[None]] = {}
        # final writes tried again while the run store cannot be reached (reads do not wait)
        self._unrecorded: set[asyncio.Task[None]] = set()
        # since when (monotonic) the store has answered this replica's heartbeats; None while
        # it does not. Before the first outage: always (start-up judges other replicas at once)
        self._store_back_at: float | None = float("-inf")
        lease = dt.timedelta(seconds=3 * context.settings.batch_poll_seconds)
        self._jobs = JobTracker(store, results, context, replica, lease)

    async def run(
        self,
        request: RunRequest,
        span_name: str = "run",
        max_wait: float | None = None,
        front_door: FrontDoor = "cli",
    ) -> RunOutcome:
        """Run ``request`` to its outcome; a request that cannot run raises WtrunnerError.

        ``max_wait`` caps the timeout of runs this process waits for (Pub/Sub's cap); a run
        handed to a back end that is not waited for keeps its own timeout. The run's record is
        ``request.run_id``.

        The run is one span named ``span_name``, a direct child of the context the request's
        W3C values describe (else the current one), whose attributes are exactly
        ``workflow_run_id`` and ``invoker_type`` (the back end's class name) as the earlier
        implementation's clients check; the outcome is a span event, resolution and the
        process are child spans, and the workflow's TRACEPARENT points at this span.

        The run is a task of this service: a caller that goes away (a client that disconnects,
        a cancelled handler) stops waiting, the run goes on and is recorded.
        """
        task = asyncio.get_running_loop().create_task(
            self._traced(request, span_name, max_wait, front_door, None)
        )
        self._background.add(task)
        task.add_done_callback(self._finished_in_background)
        return await asyncio.shield(task)

    async def submit(
        self, request: RunRequest, span_name: str = "run", front_door: FrontDoor = "http"
    ) -> tuple[RunRecord, bool]:
        """Check and record ``request``, then run it in the background; its record, and False
        when the request repeated a run in flight or succeeded (nothing new was started).

        What :meth:`run` would refuse raises here, before anything is recorded.
        """
        accepted: asyncio.Future[tuple[RunRecord, bool]] = (
            asyncio.get_running_loop().create_future()
        )
        task = asyncio.get_running_loop().create_task(
            self._traced(request, span_name, None, front_door, accepted)
        )
        self._background.add(task)
        task.add_done_callback(self._finished_in_background)
        return await accepted

    def _finished_in_background(self, task: asyncio.Task[RunOutcome]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, WtrunnerError):  # a refusal reached the submitter already
                log.error("a background run failed", exc_info=exc)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: a running one's process group is ended (SIGTERM, grace, SIGKILL) and it
        ends ``cancelled``; a queued one never starts; a remote run's job is stopped (a Cloud Batch
        job deleted, a Cloud Run execution cancelled). A run of another replica is ended by it
        (it polls for cancels with its heartbeat). A finished run is a 409."""
        record = await self.get(run_id)
        if record.state.final:
            raise InvalidTransition(f"run {run_id} has already ended ({record.state.value})")
        if record.job_name is not None and run_id not in self._cancels:
            # a remote job: stopped by its back end (the reconciler will not see it again)
            await self._jobs.stop(record)
            return await self.store.transition(
                run_id, RunState.CANCELLED, outcome=_outcome_record(_cancelled()),
                cancel_requested=True,
            )  # fmt: skip
        record = await self.store.update(run_id, cancel_requested=True)
        signal_ = self._cancels.get(run_id)
        if signal_ is not None:
            signal_.set()
        elif record.replica == self.replica or record.state is RunState.QUEUED:
            # recorded but not running here (any more): nothing will end it but this
            record = await self.store.transition(
                run_id, RunState.CANCELLED, outcome=_outcome_record(_cancelled())
            )
        return record

    async def get(self, run_id: str) -> RunRecord:
        """The run's record (RunNotFound if there is none), with what this replica knows of
        how it ended written first."""
        await self._settled(run_id)
        return await self.store.get(run_id)

    async def settled(self) -> None:
        """Wait until every run this replica has finished is recorded as finished (before a
        list, so that it shows them)."""
        if self._final_writes:
            await asyncio.wait(list(self._final_writes.values()))

    async def _settled(self, run_id: str) -> None:
        write = self._final_writes.get(run_id)
        if write is not None:
            await asyncio.wait({write})

    async def wait_final(self, run_id: str, timeout: float) -> RunRecord:
        """The run's record once it is final, or as it is after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self.get(run_id)
            remaining = deadline - loop.time()
            if record.state.final or remaining <= 0:
                return record
            if run_id in self._cancels:  # running here: woken when it ends
                ended = self._ended.setdefault(run_id, asyncio.Event())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ended.wait(), remaining)
            else:  # elsewhere (or between states): looked at again every second
                await asyncio.sleep(min(remaining, FINAL_POLL_SECONDS))

    async def track_remote_jobs(self) -> int:
        """One round of the reconciler of remote jobs, Cloud Batch's and Cloud Run's (see
        :mod:`wtrunner.job_tracking`); how many runs it looked at."""
        return await self._jobs.poll_once()

    async def recover(self, previous: str | None = None) -> list[RunRecord]:
        """At start-up: the runs this replica, or ``previous`` (the replica that used this
        cache before this start), left unfinished become ``lost``; their processes, if any
        survived, are ended (also those of runs a peer marked lost meanwhile), and their work
        dirs removed (the emptied ones kept for reuse)."""
        owners = [self.replica] if previous in (None, self.replica) else [self.replica, previous]
        lost = []
        for owner in owners:
            lost += await self.store.mark_lost(owner, LOST_MESSAGE)
        for record in lost:
            log.warning("run %s was in progress when the server stopped: lost", record.id)
        candidates = [
            record.id for owner in owners for record in await self.store.lost_with_processes(owner)
        ]
        for run_id in sorted(await anyio.to_thread.run_sync(kill_orphaned_runs, candidates)):
            log.warning("ended the processes run %s left behind", run_id)
        ended = {record.id for record in lost}.union(candidates)
        await anyio.to_thread.run_sync(self.context.work_dirs.recover, ended)
        return lost

    async def heartbeat(self, advertise_url: str, replica_timeout: dt.timedelta) -> None:
        """One round of replica liveness: say this replica is alive (and where it is), end
        as ``lost`` the runs of replicas whose heartbeat is older than ``replica_timeout``,
        and deliver the cancels other replicas recorded for runs of this one.

        After the store could not be reached, the other replicas' heartbeats are as old as the
        outage although they may be alive: their runs are judged only once the store has
        answered this replica for ``replica_timeout`` again (they have beaten by then)."""
        try:
            await self.store.heartbeat(self.replica, advertise_url)
        except ServiceUnavailableError:
            self._store_back_at = None
            raise
        now = time.monotonic()
        if self._store_back_at is None:
            self._store_back_at = now
        if now - self._store_back_at >= replica_timeout.total_seconds():
            lost = await self.store.mark_lost_of_dead_replicas(
                replica_timeout, LOST_MESSAGE, alive=self.replica
            )
            for record in lost:
                log.warning("run %s of replica %s, which stopped answering: lost", record.id,
                            record.replica)  # fmt: skip
        for run_id in await self.store.cancel_requests(self.replica):
            cancel = self._cancels.get(run_id)
            if cancel is not None and not cancel.is_set():
                log.info("run %s: cancel requested through another replica", run_id)
                cancel.set()

    async def prune(self, retention: dt.timedelta) -> list[str]:
        """Delete the records of runs that finished longer than ``retention`` ago, and the
        heartbeats of replicas silent as long (their runs ended long ago)."""
        await self.settled()
        before = dt.datetime.now(dt.timezone.utc) - retention
        pruned = await self.store.prune(before)
        await self.store.forget_replicas(before)
        for run_id in pruned:
            await self._remove_logs(run_id)
        if pruned:
            log.info("pruned %d runs finished more than %s ago", len(pruned), retention)
        return pruned

    async def refresh_counts(self) -> None:
        """Bring the ``wtrunner_runs`` gauge up to date with the store."""
        await self.settled()
        counts = await self.store.counts_by_state()
        for state in RunState:
            self.metrics.runs_by_state.labels(state.value).set(counts.get(state, 0))

    async def forget(self, run_id: str) -> None:
        """Delete a finished run's record and whatever it kept under ``<cache>/runs/<id>``."""
        await self._settled(run_id)
        await self.store.delete(run_id)
        await self._remove_logs(run_id)

    async def _remove_logs(self, run_id: str) -> None:
        kept = logs_dir(self.context.settings.cache_dir, run_id)
        await anyio.to_thread.run_sync(shutil.rmtree, kept, True)

    async def aclose(self) -> None:
        """Cancel the background runs and wait for them, then for the final writes of the
        runs that ended (server shutdown: they are recorded before the store closes)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.settled()
        for write in list(self._unrecorded):  # the store is away: the next start marks them lost
            write.cancel()
        await asyncio.gather(*self._unrecorded, return_exceptions=True)

    async def _traced(
        self,
        request: RunRequest,
        span_name: str,
        max_wait: float | None,
        front_door: FrontDoor,
        accepted: asyncio.Future[tuple[RunRecord, bool]] | None,
    ) -> RunOutcome:
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
            while True:
                try:
                    latest = await self._latest(request)
                    existing = _repeated(request, latest)
                    if existing is None:
                        prepared = await self._prepare(request, max_wait)
                        record, created = await self._claim(prepared, front_door, latest)
                    else:
                        record, created = existing, False
                except BaseException as exc:
                    if accepted is not None and not accepted.done():
                        accepted.set_exception(exc)
                    if isinstance(exc, WtrunnerError):
                        span.add_event(
                            "wtrunner.outcome", {**event, "wtrunner.outcome": "rejected"}
                        )
                        span.set_status(StatusCode.ERROR, "rejected")
                        self.metrics.runs_finished.labels(label, "rejected").inc()
                    raise
                if accepted is not None:
                    accepted.set_result((record, created))
                if created:
                    break
                span.add_event("wtrunner.duplicate", {"wtrunner.run_id": record.id})
                outcome = await self._outcome_of(record, accepted is None)
                if accepted is not None or outcome.kind is not OutcomeKind.LOST:
                    return outcome
                # the run this copy waited for was lost with its replica (a redelivered
                # message, a client trying again): it has no verdict to share, so this copy is
                # its next attempt
                log.warning("run %s was lost while a copy waited for it: running it again",
                            record.id)  # fmt: skip
            outcome = await self._execute(prepared)
            kind = outcome.kind.value
            span.add_event("wtrunner.outcome", {**event, "wtrunner.outcome": kind})
            if not outcome.succeeded:
                span.set_status(StatusCode.ERROR, kind)
            elapsed = time.perf_counter() - started
            self.metrics.runs_finished.labels(label, kind).inc()
            self.metrics.run_duration.labels(label, kind).observe(elapsed)
            return outcome

    async def _prepare(self, request: RunRequest, max_wait: float | None) -> _Prepared:
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
        await self.metadata.validate_data_connections(
            invoker.environment, request.data_connections_env_vars
        )
        await invoker.check()
        prepared = _Prepared(request, invoker)
        if invoker.is_waitable():
            prepared.before = await self.results.prepare(request.results_url)
        return prepared

    async def _latest(self, request: RunRequest) -> RunRecord | None:
        """The newest attempt recorded under the request's key (None: no key, or none yet)."""
        if request.idempotency_key is None:
            return None
        ending = self._final_writes_by_key.get(request.idempotency_key)
        if ending is not None:  # an attempt under this key ended here and is being written
            await asyncio.wait({ending})
        return await self.store.find_latest(idempotency_key=request.idempotency_key)

    async def _claim(
        self, prepared: _Prepared, front_door: FrontDoor, latest: RunRecord | None
    ) -> tuple[RunRecord, bool]:
        """Record the run as the attempt after ``latest`` under its key, atomically: the store
        refuses a second record of the same (key, attempt), and whoever loses finds the
        winner's run (in flight or succeeded: nothing new starts; the same key for another
        request is a 409).

        A local run that finds a slot free takes it first and is recorded ``running`` at once
        (one write fewer than ``queued`` then ``running``)."""
        if prepared.invoker.is_waitable():
            prepared.holds_slot = await self.slots.take_free()
        created = False
        try:
            record, created = await self._claim_attempt(prepared, front_door, latest)
        finally:
            if prepared.holds_slot and not created:
                self.slots.give_back()
                prepared.holds_slot = False
        return record, created

    async def _claim_attempt(
        self, prepared: _Prepared, front_door: FrontDoor, latest: RunRecord | None
    ) -> tuple[RunRecord, bool]:
        request = prepared.request
        for tries in range(CLAIM_TRIES):
            if tries:  # claimed at the same moment: look again
                latest = await self._latest(request)
            existing = _repeated(request, latest)
            if existing is not None:
                return existing, False
            attempt = 1 if latest is None else latest.attempt + 1
            try:
                return await self._record(prepared, front_door, attempt), True
            except DuplicateRun:
                continue
        raise ServiceUnavailableError(f"run {request.run_id} could not be recorded: try again")

    async def _record(self, prepared: _Prepared, front_door: FrontDoor, attempt: int) -> RunRecord:
        request = prepared.request
        record = await self.store.create(
            NewRun(
                id=request.run_id,
                attempt=attempt,
                idempotency_key=request.idempotency_key,
                request_hash=request.request_hash,
                workflow_run_id=request.workflow_run_id,
                package=request.package_name,
                matchspec=str(request.spec),
                invoker_type=request.invoker_type,
                front_door=front_door,
                results_url=public_url(request.results_url),
                replica=self.replica,
                data_connection_names=sorted(request.data_connections_env_vars),
                client=current_client_name(),
                state=RunState.RUNNING if prepared.holds_slot else RunState.QUEUED,
                resolved=_resolved(prepared.invoker),
            )
        )
        self._cancels[request.run_id] = asyncio.Event()
        return record

    async def _outcome_of(self, record: RunRecord, wait: bool) -> RunOutcome:
        """The outcome of a recorded run another request started (waited for when asked)."""
        duplicate: Literal["in-flight", "finished"] = (
            "finished" if record.state.final else "in-flight"
        )
        # a submitted run's answer (accepted elsewhere) is known at once
        while wait and not record.state.final and record.state is not RunState.SUBMITTED:
            record = await self.wait_final(record.id, DUPLICATE_WAIT_STEP_SECONDS)
        if record.state is RunState.SUBMITTED:
            return RunOutcome(
                OutcomeKind.ACCEPTED, result={}, job_name=record.job_name, run_id=record.id,
                duplicate=duplicate,
            )  # fmt: skip
        outcome = record.outcome
        if outcome is None:  # not waited for: still going
            return RunOutcome(
                OutcomeKind.ACCEPTED, result={}, run_id=record.id, duplicate=duplicate
            )
        try:
            kind = OutcomeKind(outcome.kind)
        except ValueError:
            kind = OutcomeKind.CRASH
        return RunOutcome(
            kind, result=outcome.result, error=outcome.error, trace=outcome.trace,
            exit_code=outcome.exit_code, job_name=record.job_name, run_id=record.id,
            duplicate=duplicate,
        )  # fmt: skip

    async def _execute(self, prepared: _Prepared) -> RunOutcome:
        """Run a recorded request and record how it ended. A refusal after the record exists
        (run slots full, a back end's API) ends it ``failed`` and is raised; a run cancelled by
        shutdown keeps its state (the next start marks it lost)."""
        run_id = prepared.request.run_id
        try:
            outcome = await self._start_and_wait(prepared)
        except WtrunnerError as exc:
            self._end(prepared, RunOutcome(OutcomeKind.CRASH, error=str(exc.detail)))
            raise
        finally:
            self._cancels.pop(run_id, None)
        self._end(prepared, outcome)
        return dataclasses.replace(outcome, run_id=run_id)

    def _end(self, prepared: _Prepared, outcome: RunOutcome) -> None:
        """Record how the run ended, in the background: the outcome goes to whoever waits
        for it at once; reads of the run through this service wait for the write."""
        run_id, key = prepared.request.run_id, prepared.request.idempotency_key
        write = asyncio.get_running_loop().create_task(self._record_end(run_id, outcome))
        self._final_writes[run_id] = write
        if key is not None:
            self._final_writes_by_key[key] = write

        def written(_: object) -> None:
            del self._final_writes[run_id]
            if key is not None and self._final_writes_by_key.get(key) is write:
                del self._final_writes_by_key[key]

        write.add_done_callback(written)

    async def _record_end(self, run_id: str, outcome: RunOutcome) -> None:
        state = STATE_OF_KIND[outcome.kind]
        fields: dict[str, object] = {"outcome": _outcome_record(outcome)}
        if outcome.job_name:
            fields["job_name"] = outcome.job_name
        try:
            if not await self._try_recording_end(run_id, state, fields):
                log.warning("could not record how run %s ended (%s) yet; trying again until "
                            "the run store answers", run_id, state.value)  # fmt: skip
                task = asyncio.get_running_loop().create_task(
                    self._rerecord_end(run_id, state, fields)
                )
                self._unrecorded.add(task)
                task.add_done_callback(self._unrecorded.discard)
        finally:
            ended = self._ended.pop(run_id, None)
            if ended is not None:
                ended.set()

    async def _rerecord_end(self, run_id: str, state: RunState, fields: dict[str, object]) -> None:
        """Record how the run ended once the run store answers again (with backoff, at least
        every heartbeat): until then it stays unfinished there, and its replica is alive, so no
        other replica marks it lost."""
        retry = Backoff(first=0.5, maximum=self.context.settings.heartbeat_seconds)
        while True:
            await asyncio.sleep(retry.next_delay())
            if await self._try_recording_end(run_id, state, fields):
                log.info("recorded how run %s ended (%s) after all", run_id, state.value)
                return

    async def _try_recording_end(
        self, run_id: str, state: RunState, fields: dict[str, object]
    ) -> bool:
        """Move the run to its final ``state``; False only when the run store cannot be
        reached (worth trying again). A run that another writer ended meanwhile keeps its
        state; any other failure is logged (the run stays unfinished in the store, and the
        next start of this replica, or a peer once its heartbeat is gone, marks it lost)."""
        try:
            await self.store.transition(run_id, state, **fields)
        except ServiceUnavailableError:
            return False
        except InvalidTransition as exc:  # e.g. cancelled from elsewhere meanwhile
            log.info("run %s kept its state: %s", run_id, exc)
        except Exception:
            log.exception("could not record how run %s ended (%s)", run_id, state.value)
        return True

    async def _start_and_wait(self, prepared: _Prepared) -> RunOutcome:
        request, invoker = prepared.request, prepared.invoker
        cancel = self._cancels[request.run_id]
        if not invoker.is_waitable():
            self.metrics.runs_started.labels(request.invoker_type).inc()
            await invoker.run()
            return RunOutcome(OutcomeKind.ACCEPTED, result={}, job_name=invoker.job_name)

        held, prepared.holds_slot = prepared.holds_slot, False  # the block below gives it back
        async with self.slots.acquire(cancel, held=held) as granted:
            if not granted or cancel.is_set():
                return _cancelled()
            self.metrics.runs_started.labels(request.invoker_type).inc()
            try:
                await invoker.run()
            except WorkflowStartError as exc:
                return RunOutcome(OutcomeKind.CRASH, error=str(exc))
            waiting = asyncio.ensure_future(invoker.wait())  # owns the process from here on
            if not held:  # recorded queued: it waited for this slot
                try:
                    await self.store.transition(request.run_id, RunState.RUNNING)
                except BaseException:
                    waiting.cancel()
                    await _finish(waiting)
                    raise
            completion = await _wait_unless_cancelled(waiting, cancel)
            if completion is None:
                return _cancelled()
        return await self._outcome(request, completion, prepared.before)

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


STATE_OF_KIND = {
    OutcomeKind.OK: RunState.SUCCEEDED,
    OutcomeKind.WORKFLOW_ERROR: RunState.FAILED,
    OutcomeKind.CRASH: RunState.FAILED,
    OutcomeKind.TIMEOUT: RunState.TIMED_OUT,
    OutcomeKind.CANCELLED: RunState.CANCELLED,
    OutcomeKind.ACCEPTED: RunState.SUBMITTED,
    OutcomeKind.LOST: RunState.LOST,
}


async def _wait_unless_cancelled(
    waiting: asyncio.Future[Completion], cancel: asyncio.Event
) -> Completion | None:
    """The run's completion (``waiting``: the invoker's wait), or None once ``cancel`` is set
    (the run's process group is then ended like at a timeout before this returns)."""
    cancelled: asyncio.Future[object] = asyncio.ensure_future(cancel.wait())
    pending: set[asyncio.Future[object]] = {waiting, cancelled}  # type: ignore[arg-type]
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cancelled.cancel()
        if not waiting.done():
            waiting.cancel()  # the invoker ends the process group before it gives up
            await _finish(waiting)
    if waiting.cancelled():
        return None
    return waiting.result()


async def _finish(task: asyncio.Future[Completion]) -> None:
    """Wait until ``task`` is done, even when this coroutine is cancelled meanwhile (the
    cancellation is raised once it is done): a run's processes are always ended and reaped."""
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


def _repeated(request: RunRequest, latest: RunRecord | None) -> RunRecord | None:
    """``latest`` (the newest attempt under the request's key) when the request repeats it:
    it is in flight or succeeded. The same key for another request, or for a run of another
    client the current caller may not see, is a 409 (naming no run)."""
    if latest is None:
        return None
    if not may_see(latest.client):
        raise RunConflict(
            f"{_key_name(request.idempotency_key or '')} names a run of another client: "
            "use another id"
        )
    if latest.request_hash != request.request_hash:
        key = request.idempotency_key or ""
        raise RunConflict(
            f"{_key_name(key)} names run {latest.id}, which asked for something else: "
            "use another id for another request"
        )
    if not latest.state.final or latest.state is RunState.SUCCEEDED:
        return latest
    return None


def _resolved(invoker: Invoker) -> ResolvedPackage | None:
    """The package a local run's MatchSpec resolved to (None for back ends resolving it
    elsewhere)."""
    environment = invoker.environment
    if environment is None:
        return None
    return ResolvedPackage(
        name=environment.name, version=environment.version, build=environment.build,
        channel=environment.source,
    )  # fmt: skip


def _cancelled() -> RunOutcome:
    return RunOutcome(OutcomeKind.CANCELLED, error=CANCELLED_MESSAGE)


def _outcome_record(outcome: RunOutcome) -> RunOutcomeRecord:
    return RunOutcomeRecord(
        kind=outcome.kind.value,
        result=outcome.result,
        error=outcome.error,
        trace=outcome.trace,
        exit_code=outcome.exit_code,
    )


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
