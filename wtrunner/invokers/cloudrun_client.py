"""The Cloud Run Admin API (v2) client of one application: made on first use, retried, closed
at shutdown.

Two asyncio gRPC clients, ``JobsAsyncClient`` (RunJob) and ``ExecutionsAsyncClient``
(GetExecution, ListExecutions, CancelExecution), so nothing blocks the event loop.
``WTRUNNER_CLOUD_RUN_ENDPOINT`` picks where they connect, as ``WTRUNNER_BATCH_ENDPOINT`` does
for Cloud Batch (``gcp_api``: empty = Google's with Application Default Credentials,
``http://host:port`` = a plain connection for local emulation and tests).

Every call is retried on UNAVAILABLE and DEADLINE_EXCEEDED with the policy Cloud Batch's calls
have (``CALL_POLICY``); every other API error is final: a :class:`CloudRunApiError` (502)
naming its gRPC status; still unavailable at the deadline: ServiceUnavailableError (503).

RunJob has no request id: a retry after an answer was lost could start a second execution. So
each execution carries a marker, ``WTRUNNER_RUN_ID=<run id>`` in its environment, and before
RunJob is tried again the job's executions are listed (ListExecutions) for one carrying it:
that one was started by the lost answer, and is the run's. RunJob answers a long-running
operation that ends only with the execution; it is not waited for: the execution it started is
its metadata.

Execution look-ups (GetExecution) go through a client-side rate limit,
``WTRUNNER_CLOUD_RUN_POLL_RATE`` calls a second per application (each retry counts). Cancelling
only starts the cancellation; an execution that is gone, or has ended already, counts as
stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import WtrunnerError
from ..gcp import import_gcp
from ..processes import RUN_ID_VARIABLE
from ..ratelimit import RateLimiter
from ..settings import Settings
from .base import InvokerContext
from .cloudrun_status import execution_progress
from .gcp_api import CallPolicy, Endpoint, GcpApiError, call, default_credentials
from .gcp_api import parse_endpoint as _parse_endpoint
from .remote_jobs import JobProgress

log = logging.getLogger(__name__)

FEATURE = "Cloud Run Jobs"
CLIENT_KEY = "CloudRunJobsSandboxInvoker"
RUN_V2 = "google.cloud.run_v2"
LIST_PAGE_SIZE = 100
# How a Cloud Run API call is retried: as Cloud Batch's are.
CALL_POLICY = CallPolicy()
# Answers of CancelExecution that mean there is nothing left to stop.
NOTHING_TO_STOP = frozenset({"NOT_FOUND", "FAILED_PRECONDITION"})

T = TypeVar("T")


class CloudRunNotConfiguredError(WtrunnerError):
    """Cloud Run Jobs cannot be used with this server's settings or credentials (500)."""

    status = 500


class CloudRunApiError(GcpApiError):
    """The Cloud Run API refused a call (502); ``code`` is the gRPC status name."""


def parse_endpoint(value: str) -> Endpoint:
    """``WTRUNNER_CLOUD_RUN_ENDPOINT`` as an :class:`Endpoint` (CloudRunNotConfiguredError if
    unusable)."""
    return _parse_endpoint(value, "WTRUNNER_CLOUD_RUN_ENDPOINT", CloudRunNotConfiguredError)


@dataclass(frozen=True)
class _Clients:
    jobs: Any  # run_v2.JobsAsyncClient
    executions: Any  # run_v2.ExecutionsAsyncClient


class CloudRunClient:
    """The application's Cloud Run clients, created on first use; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        policy: CallPolicy | None = None,
        *,
        poll_limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy if policy is not None else CALL_POLICY
        self.poll_limiter = (
            poll_limiter if poll_limiter is not None else RateLimiter(settings.cloud_run_poll_rate)
        )
        self._clients: _Clients | None = None
        self._lock = asyncio.Lock()

    async def clients(self) -> _Clients:
        """The API clients, made on the first call (one pair per application)."""
        async with self._lock:
            if self._clients is None:
                self._clients = await self._make_clients()
            return self._clients

    async def _make_clients(self) -> _Clients:
        endpoint = parse_endpoint(self.settings.cloud_run_endpoint)
        run_v2 = import_gcp(RUN_V2, FEATURE)
        if endpoint.plain:
            grpc_aio = import_gcp("grpc.aio", FEATURE)
            jobs = import_gcp(f"{RUN_V2}.services.jobs.transports.grpc_asyncio", FEATURE)
            executions = import_gcp(
                f"{RUN_V2}.services.executions.transports.grpc_asyncio", FEATURE
            )
            # A channel given to a transport carries no credentials: nothing is looked up.
            return _Clients(
                run_v2.JobsAsyncClient(
                    transport=jobs.JobsGrpcAsyncIOTransport(
                        channel=grpc_aio.insecure_channel(endpoint.target)
                    )
                ),
                run_v2.ExecutionsAsyncClient(
                    transport=executions.ExecutionsGrpcAsyncIOTransport(
                        channel=grpc_aio.insecure_channel(endpoint.target)
                    )
                ),
            )
        credentials = await default_credentials(FEATURE, CloudRunNotConfiguredError)
        options = {"api_endpoint": endpoint.target} if endpoint.target else None
        return _Clients(
            run_v2.JobsAsyncClient(credentials=credentials, client_options=options),
            run_v2.ExecutionsAsyncClient(credentials=credentials, client_options=options),
        )

    async def run_job(self, request: Any, marker: str) -> Any:
        """Start an execution of the job ``request`` names (a ``RunJobRequest`` whose overrides
        set ``WTRUNNER_RUN_ID=marker``); the ``Execution`` it started, as RunJob's operation
        describes it (its ``name`` at least).

        Raises CloudRunApiError (502) when the API refuses it, ServiceUnavailableError (503)
        when it stayed unavailable until the policy's deadline.
        """
        clients = await self.clients()
        timeout = self.policy.attempt_timeout
        tried = False

        async def attempt() -> Any:
            nonlocal tried
            if tried:  # the answer may have been lost after the execution started
                started = await self._find(clients, request.name, marker)
                if started is not None:
                    log.info("Cloud Run execution %s was started by an earlier attempt",
                             started.name)  # fmt: skip
                    return started
            tried = True
            operation = await clients.jobs.run_job(request=request, retry=None, timeout=timeout)
            execution = operation.metadata
            if execution is None or not execution.name:
                execution = await self._find(clients, request.name, marker)
            if execution is None:
                raise CloudRunApiError(
                    f"the {FEATURE} API started an execution of {request.name} without naming "
                    "it, and none carries this run's marker",
                    "UNKNOWN",
                )
            return execution

        return await self._call(f"RunJob {request.name}", attempt)

    async def _find(self, clients: _Clients, job: str, marker: str) -> Any:
        """The execution of ``job`` whose environment carries the run's marker, or None (one
        ListExecutions call a page; errors propagate to the caller's retry)."""
        run_v2 = import_gcp(RUN_V2, FEATURE)
        token = ""
        while True:
            request = run_v2.ListExecutionsRequest(
                parent=job, page_size=LIST_PAGE_SIZE, page_token=token
            )
            page = await clients.executions.list_executions(
                request=request, retry=None, timeout=self.policy.attempt_timeout
            )
            for execution in page.executions:
                if carries_marker(execution, marker):
                    return execution
            token = page.next_page_token
            if not token:
                return None

    async def get_execution(self, name: str) -> Any:
        """The ``Execution`` named ``name`` (``projects/P/locations/L/jobs/J/executions/E``).

        Each attempt waits for the poll rate limit first. Raises CloudRunApiError (code
        ``NOT_FOUND`` once it is gone), ServiceUnavailableError as :meth:`run_job`.
        """
        run_v2 = import_gcp(RUN_V2, FEATURE)
        clients = await self.clients()
        request = run_v2.GetExecutionRequest(name=name)
        timeout = self.policy.attempt_timeout

        async def attempt() -> Any:
            await self.poll_limiter.acquire()
            return await clients.executions.get_execution(
                request=request, retry=None, timeout=timeout
            )

        return await self._call(f"GetExecution {name}", attempt)

    async def cancel_execution(self, name: str) -> bool:
        """Start cancelling the execution named ``name``; whether Cloud Run took the
        cancellation (False: it was gone or had ended already, which counts as stopped too).

        Its long-running operation is not waited for. Errors as :meth:`get_execution`.
        """
        run_v2 = import_gcp(RUN_V2, FEATURE)
        clients = await self.clients()
        request = run_v2.CancelExecutionRequest(name=name)
        timeout = self.policy.attempt_timeout

        async def attempt() -> Any:
            return await clients.executions.cancel_execution(
                request=request, retry=None, timeout=timeout
            )

        try:
            await self._call(f"CancelExecution {name}", attempt)
        except CloudRunApiError as exc:
            if exc.code in NOTHING_TO_STOP:
                log.info("Cloud Run execution %s has nothing left to cancel: %s", name, exc)
                return False
            raise
        log.info("cancelling Cloud Run execution %s", name)
        return True

    async def _call(self, subject: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await call(FEATURE, subject, attempt, self.policy, CloudRunApiError)

    async def close(self) -> None:
        """Close the clients' channels (at application shutdown)."""
        async with self._lock:
            clients, self._clients = self._clients, None
        if clients is not None:
            await clients.jobs.transport.close()
            await clients.executions.transport.close()


def carries_marker(execution: Any, marker: str) -> bool:
    """Whether ``execution``'s containers have ``WTRUNNER_RUN_ID=marker`` in their environment."""
    return any(
        variable.name == RUN_ID_VARIABLE and variable.value == marker
        for container in execution.template.containers
        for variable in container.env
    )


@dataclass(frozen=True)
class CloudRunExecutions:
    """The Cloud Run runs' status source for the reconciler (``wtrunner.job_tracking``)."""

    client: CloudRunClient
    noun: str = "Cloud Run execution"

    async def progress(self, name: str) -> JobProgress:
        """How the execution named ``name`` is doing (GetExecution)."""
        return execution_progress(await self.client.get_execution(name))

    async def stop(self, name: str) -> None:
        """Cancel the execution named ``name`` (gone or ended already counts as stopped)."""
        await self.client.cancel_execution(name)


def cloud_run_client(context: InvokerContext) -> CloudRunClient:
    """The application's CloudRunClient, kept in ``context.clients`` (closed with the context)."""
    client = context.clients.get(CLIENT_KEY)
    if not isinstance(client, CloudRunClient):
        client = context.clients[CLIENT_KEY] = CloudRunClient(context.settings)
    return client
