"""A local fake of the Cloud Batch API (CreateJob, GetJob, DeleteJob) speaking its real protocol.

An in-process ``grpc.aio`` server on 127.0.0.1 registers the methods of
``google.cloud.batch.v1.BatchService`` with the library's own (de)serialisers, so the real
``BatchServiceAsyncClient`` talks to it exactly as to Google (wtrunner reaches it with
``WTRUNNER_BATCH_ENDPOINT=http://127.0.0.1:PORT``).

- CreateJob: like the real API it checks the job id, labels, parent and request id
  (INVALID_ARGUMENT), refuses a second job with the same name (ALREADY_EXISTS), and answers a
  repeated request id with the job that request created. A new job is QUEUED.
- GetJob: the job as it is now (NOT_FOUND once it is gone or for a name never created).
  Tests script a job's progress with :meth:`FakeBatch.set_state`.
- DeleteJob: marks the job DELETION_IN_PROGRESS and answers a ``google.longrunning.Operation``
  that is not done, as Batch does; :meth:`FakeBatch.finish_deletions` then removes the jobs (or
  ``finish_deletions_at_once``), after which GetJob and DeleteJob answer NOT_FOUND.

Tests script failures of any method with :meth:`FakeBatch.fail_next` and hold answers with
:meth:`FakeBatch.hold` (the machinery of tests/grpc_fake.py); ``requests`` (CreateJob),
``get_calls`` and ``delete_requests`` record what arrived, ``deleted`` the jobs whose deletion
began.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from google.cloud import batch_v1
from google.longrunning import operations_pb2

from tests.grpc_fake import Context, GrpcFake, now, pending_operation, unary

SERVICE = "google.cloud.batch.v1.BatchService"
JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
PARENT = re.compile(r"^projects/[^/]+/locations/[^/]+$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
State = batch_v1.JobStatus.State


class FakeBatch(GrpcFake):
    """The fake service (see the module docstring); ``jobs`` holds the jobs that exist."""

    default_method = "CreateJob"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []  # every CreateJobRequest received
        self.get_calls: list[str] = []  # the name of every GetJob received
        self.delete_requests: list[Any] = []  # every DeleteJobRequest received
        self.deleted: list[str] = []  # the jobs whose deletion began, in order
        self.jobs: dict[str, Any] = {}
        # True: a deletion is done before its answer (the job is gone for the next call).
        self.finish_deletions_at_once = False
        self._job_of_request: dict[str, str] = {}

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        """The BatchService methods the fake serves."""
        methods = {
            "CreateJob": unary(self._create_job, batch_v1.CreateJobRequest, batch_v1.Job.serialize),
            "GetJob": unary(self._get_job, batch_v1.GetJobRequest, batch_v1.Job.serialize),
            "DeleteJob": unary(
                self._delete_job,
                batch_v1.DeleteJobRequest,
                operations_pb2.Operation.SerializeToString,
            ),
        }
        return [grpc.method_handlers_generic_handler(SERVICE, methods)]

    def set_state(
        self,
        name: str,
        state: Any,
        *,
        events: Iterable[Any] | None = None,
        run_duration: dt.timedelta | None = None,
    ) -> Any:
        """Move job ``name`` to ``state`` (a ``JobStatus.State``), as Batch would; the job.

        Batch's own ``STATUS_CHANGED`` event ("Job state is set from A to B for job NAME.") is
        added, unless ``events`` (``StatusEvent`` messages) are given: they are added instead.
        """
        job = self.jobs[name]
        old = State(job.status.state)
        if events is None:
            events = [
                batch_v1.StatusEvent(
                    type_="STATUS_CHANGED",
                    description=f"Job state is set from {old.name} to {State(state).name} "
                    f"for job {name}.",
                    event_time=now(),
                )
            ]
        job.status.state = state
        job.status.status_events.extend(events)
        if run_duration is not None:
            job.status.run_duration = run_duration
        job.update_time = now()
        return job

    def finish_deletions(self) -> list[str]:
        """Remove every job whose deletion is in progress (Batch is done); their names."""
        gone = [
            name for name, job in self.jobs.items()
            if job.status.state == State.DELETION_IN_PROGRESS
        ]  # fmt: skip
        for name in gone:
            del self.jobs[name]
        return gone

    async def _create_job(self, request: Any, context: Context) -> Any:
        self.requests.append(request)
        failure = await self._enter("CreateJob", context)
        problems = invalid(request)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        name = self._job_of_request.get(request.request_id)
        if name is None:
            name = f"{request.parent}/jobs/{request.job_id}"
            if name in self.jobs:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{name} already exists")
            job = batch_v1.Job(request.job)
            job.name = name
            job.uid = uuid.uuid4().hex
            job.status = batch_v1.JobStatus(state=State.QUEUED)
            job.create_time = job.update_time = now()
            self.jobs[name] = job
            self._job_of_request[request.request_id] = name
        await self._lose_answer(failure, context)  # created, but the answer is lost
        return self.jobs[name]

    async def _get_job(self, request: Any, context: Context) -> Any:
        self.get_calls.append(request.name)
        failure = await self._enter("GetJob", context)
        job = self.jobs.get(request.name)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Job {request.name} not found")
        await self._lose_answer(failure, context)
        return job

    async def _delete_job(self, request: Any, context: Context) -> Any:
        self.delete_requests.append(request)
        failure = await self._enter("DeleteJob", context)
        if request.name not in self.jobs:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Job {request.name} not found")
        if (
            self.jobs[request.name].status.state != State.DELETION_IN_PROGRESS
        ):  # again: another operation, as Batch
            self.set_state(request.name, State.DELETION_IN_PROGRESS)
            self.deleted.append(request.name)
        if self.finish_deletions_at_once:
            self.finish_deletions()
        await self._lose_answer(failure, context)  # deleting, but the answer is lost
        return deletion_operation(request.name)


def deletion_operation(name: str) -> operations_pb2.Operation:
    """The long-running operation Batch answers a DeleteJob with: not done yet."""
    parent = name.rsplit("/jobs/", 1)[0]
    metadata = batch_v1.OperationMetadata(
        create_time=now(), target=name, verb="delete", api_version="v1"
    )
    return pending_operation(
        f"{parent}/operations/operation-{uuid.uuid4().hex}", batch_v1.OperationMetadata.pb(metadata)
    )


def invalid(request: Any) -> list[str]:
    """What the real API would refuse in ``request`` (a subset of its checks)."""
    problems = []
    if not PARENT.match(request.parent):
        problems.append(f"parent {request.parent!r} is not projects/*/locations/*")
    if not JOB_ID.match(request.job_id):
        problems.append(f"job_id {request.job_id!r} is invalid")
    try:
        uuid.UUID(request.request_id)
    except ValueError:
        problems.append(f"request_id {request.request_id!r} is not a UUID")
    job = request.job
    for labels in (job.labels, job.allocation_policy.labels):
        for key, value in labels.items():
            if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
                problems.append(f"label {key}={value!r} is invalid")
    if len(job.task_groups) != 1:
        problems.append("exactly one task group is supported")
    elif not all(r.container.image_uri for r in job.task_groups[0].task_spec.runnables):
        problems.append("a container runnable needs image_uri")
    return problems
