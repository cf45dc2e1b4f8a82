"""Cloud Batch runs followed to their end: a reconciler polls the jobs the service submitted.

A Batch run is recorded ``submitted`` when its job is created. From then on, every
``WTRUNNER_BATCH_POLL_SECONDS`` a replica leases a batch of such runs (a lease column in the run
store: one replica polls a given job at a time, and a dead replica's leases expire), asks Batch
for each job (GetJob, rate-limited by the client) and moves the record along:
``submitted -> running -> succeeded | failed | cancelled | lost``. When a job succeeded, the
workflow's ``result.json`` is read from the run's results URL, as for a local run.

Part of the run path: :class:`~wtrunner.runs.RunService` owns the tracker and its writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from .errors import ServiceUnavailableError
from .invokers.batch_client import BatchApiError, BatchClient
from .invokers.batch_status import run_state_of
from .results import InvalidResultError, ResultsStore
from .run_request import CANCELLED_MESSAGE
from .run_states import InvalidTransition, RunState
from .runstore import RunNotFound, RunOutcomeRecord, RunRecord, RunStore

log = logging.getLogger(__name__)

LEASED_PER_ROUND = 50
GONE_MESSAGE = "The Cloud Batch job {job} no longer exists; how the run ended is not known."


class BatchTracker:
    """Polls the Batch jobs of ``submitted`` and ``running`` runs and records their progress."""

    def __init__(
        self,
        store: RunStore,
        results: ResultsStore,
        client: Callable[[], BatchClient],
        replica: str,
        lease: dt.timedelta,
    ) -> None:
        self.store = store
        self.results = results
        self._client = client
        self.replica = replica
        self.lease = lease

    async def poll_once(self) -> int:
        """One round: lease up to :data:`LEASED_PER_ROUND` runs and bring each up to date with
        its job; how many were looked at."""
        records = await self.store.lease_batch_runs(self.replica, LEASED_PER_ROUND, self.lease)
        for record in records:
            try:
                await self.track(record)
            except (InvalidTransition, RunNotFound) as exc:  # cancelled or forgotten meanwhile
                log.info("run %s: %s", record.id, exc)
        return len(records)

    async def track(self, record: RunRecord) -> RunRecord:
        """Bring ``record`` (a run with a Batch job) up to date with its job; the record after.

        A job Batch no longer knows ends the run ``lost``; an API error other than that leaves
        the record as it is (the next round asks again)."""
        assert record.job_name is not None
        try:
            job = await self._client().get_job(record.job_name)
        except BatchApiError as exc:
            if exc.code != "NOT_FOUND":
                log.warning("Cloud Batch job %s of run %s: %s", record.job_name, record.id, exc)
                return record
            outcome = RunOutcomeRecord(kind="lost", error=GONE_MESSAGE.format(job=record.job_name))
            return await self.store.transition(record.id, RunState.LOST, outcome=outcome)
        except ServiceUnavailableError as exc:
            log.warning("Cloud Batch job %s of run %s: %s", record.job_name, record.id, exc)
            return record
        progress = run_state_of(job)
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
            state, outcome = await self._result(record)
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
        log.info("run %s: Cloud Batch job %s is %s", record.id, record.job_name, state.value)
        return await self.store.transition(record.id, state, outcome=outcome, **times)

    async def _result(self, record: RunRecord) -> tuple[RunState, RunOutcomeRecord]:
        """The outcome of a run whose job succeeded: what its ``result.json`` says."""
        try:
            document = await self.results.read(record.results_url, None)
        except InvalidResultError as exc:
            error = f"The workflow wrote an unusable {exc}"
            return RunState.FAILED, RunOutcomeRecord(kind="crash", error=error, exit_code=0)
        if document is None:
            error = f"The Batch job succeeded but wrote no result.json at {record.results_url}"
            return RunState.FAILED, RunOutcomeRecord(kind="crash", error=error, exit_code=0)
        if document["error"] is None:
            return RunState.SUCCEEDED, RunOutcomeRecord(kind="ok", **document, exit_code=0)
        return RunState.FAILED, RunOutcomeRecord(kind="workflow_error", **document, exit_code=0)
