"""What the reconciler needs of a back end whose runs go on elsewhere (Cloud Batch jobs, Cloud
Run executions): how one is doing, and how to stop it. No Google library is imported here.

A back end that is not waited for names its status source through
:meth:`~wtrunner.invokers.base.Invoker.remote_jobs`; the reconciler
(``wtrunner.job_tracking``) follows every such run with it, and cancelling such a run stops
its job with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from ..run_states import RunState


@dataclass(frozen=True)
class JobProgress:
    """A remote job's status as its run's record says it.

    ``error`` is set for a failed job only, ``exit_code`` when the back end gave the failed
    task's; times are aware UTC datetimes, None when the status does not tell them.
    """

    state: RunState
    error: str | None = None
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class RemoteJobs(Protocol):
    """A back end's status source: what its remote jobs (named by their full resource names,
    the ``job_name`` of their runs' records) are doing, and stopping one.

    Both calls raise :class:`~wtrunner.invokers.gcp_api.GcpApiError` when the API refuses
    (code ``NOT_FOUND`` when the job is gone) and ServiceUnavailableError while it cannot be
    reached.
    """

    @property
    def noun(self) -> str:
        """What a job is called in messages (``Cloud Batch job``)."""

    async def progress(self, name: str) -> JobProgress:
        """How the job named ``name`` is doing."""

    async def stop(self, name: str) -> None:
        """Stop the job named ``name`` (one that is gone or has ended counts as stopped)."""


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as a plain aware datetime in UTC (not the protobuf library's subclass)."""
    moment = moment.astimezone(dt.timezone.utc)
    return dt.datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=dt.timezone.utc,
    )
