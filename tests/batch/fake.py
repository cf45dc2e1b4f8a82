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
:meth:`FakeBatch.hold`; ``requests`` (CreateJob), ``get_calls`` and ``delete_requests`` record what
arrived, ``deleted`` the jobs whose deletion began.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud import batch_v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

SERVICE = "google.cloud.batch.v1.BatchService"
JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
PARENT = re.compile(r"^projects/[^/]+/locations/[^/]+$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
State = batch_v1.JobStatus.State


@dataclass
class Failure:
    """How the fake answers one call: abort with ``code``, before or after doing what was asked
    (creating or deleting the job), or (``hang``) never answer, so that the client's deadline
    passes."""

    code: grpc.StatusCode
    message: str
    after_creating: bool = False
    hang: bool = False


def now() -> dt.datetime:
    """The current time, as Batch stamps its events."""
    return dt.datetime.now(dt.timezone.utc)


class FakeBatch:
    """The fake service (see the module docstring); ``jobs`` holds the jobs that exist."""

    def __init__(self) -> None:
        self.requests: list[Any] = []  # every CreateJobRequest received
        self.get_calls: list[str] = []  # the name of every GetJob received
        self.delete_requests: list[Any] = []  # every DeleteJobRequest received
        self.deleted: list[str] = []  # the jobs whose deletion began, in order
        self.jobs: dict[str, Any] = {}
        # True: a deletion is done before its answer (the job is gone for the next call).
        self.finish_deletions_at_once = False
        self._job_of_request: dict[str, str] = {}
        self._failures: dict[str, list[Failure]] = {}
        self._gate: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._server: grpc.aio.Server | None = None
        self.endpoint = ""

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1; ``endpoint`` is ``http://127.0.0.1:PORT``."""
        self._arrived = asyncio.Event()
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "CreateJob": grpc.unary_unary_rpc_method_handler(
                    self._create_job,
                    request_deserializer=batch_v1.CreateJobRequest.deserialize,
                    response_serializer=batch_v1.Job.serialize,
                ),
                "GetJob": grpc.unary_unary_rpc_method_handler(
                    self._get_job,
                    request_deserializer=batch_v1.GetJobRequest.deserialize,
                    response_serializer=batch_v1.Job.serialize,
                ),
                "DeleteJob": grpc.unary_unary_rpc_method_handler(
                    self._delete_job,
                    request_deserializer=batch_v1.DeleteJobRequest.deserialize,
                    response_serializer=operations_pb2.Operation.SerializeToString,
                ),
            },
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        self.endpoint = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop at once; calls still held are cancelled."""
        if self._gate is not None:
            self._gate.set()
        if self._server is not None:
            await self._server.stop(None)

    def fail_next(
        self,
        code: grpc.StatusCode,
        message: str = "scripted failure",
        *,
        times: int = 1,
        after_creating: bool = False,
        hang: bool = False,
        method: str = "CreateJob",
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (see :class:`Failure`)."""
        failures = self._failures.setdefault(method, [])
        failures += [Failure(code, message, after_creating, hang) for _ in range(times)]

    def hold(self) -> None:
        """Hold every answer until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held calls."""
        assert self._gate is not None
        self._gate.set()

    async def wait_for_request(self, timeout: float = 10.0) -> None:
        """Return once a request (of any method) has arrived (bounded)."""
        assert self._arrived is not None
        await asyncio.wait_for(self._arrived.wait(), timeout)

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

    async def _enter(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Failure | None:
        """What every call does first: note its arrival, wait while held, take its failure
        and abort now unless it fails only after doing its work (returned then)."""
        assert self._arrived is not None
        self._arrived.set()
        if self._gate is not None:
            await self._gate.wait()
        failures = self._failures.get(method)
        failure = failures.pop(0) if failures else None
        if failure is not None and failure.hang:
            await asyncio.Event().wait()  # until the client gives up and the call is cancelled
        if failure is not None and not failure.after_creating:
            await context.abort(failure.code, failure.message)
        return failure

    async def _create_job(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
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
        if failure is not None:  # created, but the answer is lost
            await context.abort(failure.code, failure.message)
        return self.jobs[name]

    async def _get_job(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.get_calls.append(request.name)
        failure = await self._enter("GetJob", context)
        job = self.jobs.get(request.name)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Job {request.name} not found")
        if failure is not None:
            await context.abort(failure.code, failure.message)
        return job

    async def _delete_job(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
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
        if failure is not None:  # deleting, but the answer is lost
            await context.abort(failure.code, failure.message)
        return deletion_operation(request.name)


def deletion_operation(name: str) -> operations_pb2.Operation:
    """The long-running operation Batch answers a DeleteJob with: not done yet."""
    parent = name.rsplit("/jobs/", 1)[0]
    metadata = any_pb2.Any()
    metadata.Pack(
        batch_v1.OperationMetadata.pb(
            batch_v1.OperationMetadata(
                create_time=now(), target=name, verb="delete", api_version="v1"
            )
        )
    )
    return operations_pb2.Operation(
        name=f"{parent}/operations/operation-{uuid.uuid4().hex}", done=False, metadata=metadata
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
