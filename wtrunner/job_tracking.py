"""Runs handed to a remote back end, followed to their end: one reconciler for every back end
that is not waited for (Cloud Batch jobs, Cloud Run Jobs executions).

Such a run is recorded ``submitted`` with its job's full resource name (``job_name``). From
then on, every ``WTRUNNER_BATCH_POLL_SECONDS`` a replica leases a batch of such runs (a lease
column in the run store: one replica follows a given job at a time, and a dead replica's leases
expire), asks the run's back end how its job is doing through the back end's status source
(:class:`~wtrunner.invokers.remote_jobs.RemoteJobs`: GetJob, GetExecution, each rate-limited by
its client) and moves the record along: ``submitted -> running -> succeeded | failed |
cancelled | lost``. When a job succeeded, the workflow's ``result.json`` is read from the run's
results URL, as for a local run; a ``file://`` URL is the job's own disk (a Cloud Run sandbox's
staging directory, shipped elsewhere as an archive), which this server cannot read.

Part of the run path: :class:`~wtrunner.runs.RunService` owns the tracker and its writes, and
stops a job through it when its run is cancelled.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlsplit

from .errors import ServiceUnavailableError
from .invokers import InvokerContext, invoker_class
from .invokers.gcp_api import GcpApiError
from .invokers.remote_jobs import RemoteJobs
from .results import InvalidResultError, ResultsStore
from .run_request import CANCELLED_MESSAGE
from .run_states import InvalidTransition, RunState
from .runstore import RunNotFound, RunOutcomeRecord, RunRecord, RunStore

log = logging.getLogger(__name__)

LEASED_PER_ROUND = 50
GONE_MESSAGE = "The {noun} {job} no longer exists; how the run ended is not known."


class UnknownBackEnd(RuntimeError):
    """A run has a remote job, but its back end has no status source (a record of another
    version of wtrunner)."""


class JobTracker:
    """Polls the remote jobs of ``submitted`` and ``running`` runs and records their progress."""

    def __init__(
        self,
        store: RunStore,
        results: ResultsStore,
        context: InvokerContext,
        replica: str,
        lease: dt.timedelta,
    ) -> None:
        self.store = store
        self.results = results
        self.context = context
        self.replica = replica
        self.lease = lease

    def source(self, record: RunRecord) -> RemoteJobs:
        """The status source of the back end that ran ``record`` (UnknownBackEnd: none)."""
        try:
            jobs = invoker_class(record.invoker_type).remote_jobs(self.context)
        except KeyError:
            jobs = None
        if jobs is None:
            raise UnknownBackEnd(f"{record.invoker_type} has no remote jobs to follow")
        return jobs

    async def poll_once(self) -> int:
        """One round: lease up to :data:`LEASED_PER_ROUND` runs and bring each up to date with
        its job; how many were looked at."""
        records = await self.store.lease_batch_runs(self.replica, LEASED_PER_ROUND, self.lease)
        for record in records:
            try:
                await self.track(record)
            except (InvalidTransition, RunNotFound) as exc:  # cancelled or forgotten meanwhile
                log.info("run %s: %s", record.id, exc)
            except UnknownBackEnd as exc:
                log.warning("run %s: %s", record.id, exc)
        return len(records)

    async def stop(self, record: RunRecord) -> None:
        """Stop the job of ``record`` (a run with a remote job) through its back end."""
        assert record.job_name is not None
        await self.source(record).stop(record.job_name)

    async def track(self, record: RunRecord) -> RunRecord:
        """Bring ``record`` (a run with a remote job) up to date with its job; the record after.

        A job its back end no longer knows ends the run ``lost``; an API error other than that
        leaves the record as it is (the next round asks again)."""
        assert record.job_name is not None
        source = self.source(record)
        try:
            progress = await source.progress(record.job_name)
        except GcpApiError as exc:
            if exc.code != "NOT_FOUND":
                log.warning("%s %s of run %s: %s", source.noun, record.job_name, record.id, exc)
                return record
            error = GONE_MESSAGE.format(noun=source.noun, job=record.job_name)
            outcome = RunOutcomeRecord(kind="lost", error=error)
            return await self.store.transition(record.id, RunState.LOST, outcome=outcome)
        except ServiceUnavailableError as exc:
            log.warning("%s %s of run %s: %s", source.noun, record.job_name, record.id, exc)
            return record
        if progress.state is record.state:
            return record
        if progress.state is RunState.RUNNING:
            return await self.store.transition(
                record.id, RunState.RUNNING, started_at=progress.started_at
            )
        times = {"finished_at": progress.finished_at}
        if record.started_at is None and progress.started_at is not None:
            times["started_at"] = progress.started_at
        if progress.state is RunState.SUCCEEDED:
            state, outcome = await self._result(record, source.noun)
        elif progress.state is RunState.CANCELLED:
            state, outcome = (
                RunState.CANCELLED,
                RunOutcomeRecord(kind="cancelled", error=CANCELLED_MESSAGE),
            )
        else:
            state, outcome = (
                progress.state,
                RunOutcomeRecord(kind="crash", error=progress.error, exit_code=progress.exit_code),
            )
        log.info("run %s: %s %s is %s", record.id, source.noun, record.job_name, state.value)
        return await self.store.transition(record.id, state, outcome=outcome, **times)

    async def _result(self, record: RunRecord, noun: str) -> tuple[RunState, RunOutcomeRecord]:
        """The outcome of a run whose job succeeded: what its ``result.json`` says."""
        if urlsplit(record.results_url).scheme.lower() == "file":
            # the job's own disk: its results went elsewhere (an archive), not to this server
            return RunState.SUCCEEDED, RunOutcomeRecord(kind="ok", exit_code=0)
        try:
            document = await self.results.read(record.results_url, None)
        except InvalidResultError as exc:
            error = f"The workflow wrote an unusable {exc}"
            return RunState.FAILED, RunOutcomeRecord(kind="crash", error=error, exit_code=0)
        if document is None:
            error = f"The {noun} succeeded but wrote no result.json at {record.results_url}"
            return RunState.FAILED, RunOutcomeRecord(kind="crash", error=error, exit_code=0)
        if document["error"] is None:
            return RunState.SUCCEEDED, RunOutcomeRecord(kind="ok", **document, exit_code=0)
        return RunState.FAILED, RunOutcomeRecord(kind="workflow_error", **document, exit_code=0)
