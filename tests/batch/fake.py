"""A local fake of the Cloud Batch API (``CreateJob``) that speaks its real protocol.

An in-process ``grpc.aio`` server on 127.0.0.1 registers ``google.cloud.batch.v1.BatchService/
CreateJob`` with the library's own (de)serialisers, so the real ``BatchServiceAsyncClient``
talks to it exactly as to Google (wtrunner reaches it with ``WTRUNNER_BATCH_ENDPOINT=http://
127.0.0.1:PORT``). Like the real API it checks the job id, labels, parent and request id
(INVALID_ARGUMENT), refuses a second job with the same name (ALREADY_EXISTS), and answers a
repeated request id with the job that request created. Tests script failures with
:meth:`FakeBatch.fail_next` and hold answers with :meth:`FakeBatch.hold`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud import batch_v1

SERVICE = "google.cloud.batch.v1.BatchService"
JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
PARENT = re.compile(r"^projects/[^/]+/locations/[^/]+$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


@dataclass
class Failure:
    """How the fake answers one call: abort with ``code``, before or after creating the job,
    or (``hang``) never answer, so that the client's deadline passes."""

    code: grpc.StatusCode
    message: str
    after_creating: bool = False
    hang: bool = False


class FakeBatch:
    """The fake service; ``requests`` holds every CreateJobRequest received, ``jobs`` the jobs."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.jobs: dict[str, Any] = {}
        self._job_of_request: dict[str, str] = {}
        self._failures: list[Failure] = []
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
                )
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
    ) -> None:
        """Make the next ``times`` calls fail (see :class:`Failure`)."""
        self._failures += [Failure(code, message, after_creating, hang) for _ in range(times)]

    def hold(self) -> None:
        """Hold every answer until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held calls."""
        assert self._gate is not None
        self._gate.set()

    async def wait_for_request(self, timeout: float = 10.0) -> None:
        """Return once a request has arrived (bounded)."""
        assert self._arrived is not None
        await asyncio.wait_for(self._arrived.wait(), timeout)

    async def _create_job(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.requests.append(request)
        assert self._arrived is not None
        self._arrived.set()
        if self._gate is not None:
            await self._gate.wait()
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and failure.hang:
            await asyncio.Event().wait()  # until the client gives up and the call is cancelled
        if failure is not None and not failure.after_creating:
            await context.abort(failure.code, failure.message)
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
            self.jobs[name] = job
            self._job_of_request[request.request_id] = name
        if failure is not None:  # created, but the answer is lost
            await context.abort(failure.code, failure.message)
        return self.jobs[name]


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
