"""The Cloud Batch API client of one application: made on first use, retried, closed at shutdown.

It is the asyncio gRPC client (``BatchServiceAsyncClient``), so a submission never blocks the
event loop. ``WTRUNNER_BATCH_ENDPOINT`` picks where it connects:

- empty: Google's endpoint, with Application Default Credentials (looked up in a worker
  thread: on GKE that asks the metadata server);
- ``http://host:port``: a plain, unauthenticated gRPC connection (local emulation and tests;
  no credentials are looked up at all);
- ``https://host[:port]`` or ``host[:port]``: that endpoint over TLS, with ADC.

Every call (creating, looking up and deleting a job) is retried on UNAVAILABLE and
DEADLINE_EXCEEDED by google-api-core's ``AsyncRetry`` (``SUBMIT_POLICY``: exponential backoff with
jitter within a deadline) with the very same request, request id included, so Batch recognises a
retry of a job it already created (or a deletion it already started) and no second job appears.
Every other API error is final: a :class:`BatchApiError` naming its gRPC status; still
unavailable at the deadline: ServiceUnavailableError.

Job look-ups (``GetJob``) go through a client-side rate limit, ``WTRUNNER_BATCH_POLL_RATE``
calls a second per application (each retry counts), so following many jobs never bursts into
Batch's quota. Deleting a job only starts the deletion (Batch finishes it asynchronously); a job
that is gone already counts as deleted. The endpoint, credentials and retries work as for every
Google API client of wtrunner (``gcp_api``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import WtrunnerError
from ..gcp import import_gcp
from ..ratelimit import RateLimiter
from ..settings import Settings
from .base import InvokerContext
from .batch_status import run_state_of
from .gcp_api import CallPolicy, Endpoint, GcpApiError, call, default_credentials
from .gcp_api import parse_endpoint as _parse_endpoint
from .remote_jobs import JobProgress

log = logging.getLogger(__name__)

FEATURE = "Cloud Batch"
CLIENT_KEY = "CloudBatchInvoker"

T = TypeVar("T")

__all__ = [
    "CLIENT_KEY",
    "FEATURE",
    "SUBMIT_POLICY",
    "BatchApiError",
    "BatchClient",
    "BatchJobs",
    "BatchNotConfiguredError",
    "Endpoint",
    "SubmitPolicy",
    "batch_client",
    "parse_endpoint",
]


class BatchNotConfiguredError(WtrunnerError):
    """Cloud Batch cannot be used with this server's settings or credentials (500)."""

    status = 500


class BatchApiError(GcpApiError):
    """The Batch API refused the job (502); ``code`` is the gRPC status name."""


# How a Batch API call (submission, look-up, deletion) is retried (gcp_api.CallPolicy).
SubmitPolicy = CallPolicy
SUBMIT_POLICY = SubmitPolicy()


def parse_endpoint(value: str) -> Endpoint:
    """``WTRUNNER_BATCH_ENDPOINT`` as an :class:`Endpoint` (BatchNotConfiguredError if unusable)."""
    return _parse_endpoint(value, "WTRUNNER_BATCH_ENDPOINT", BatchNotConfiguredError)


class BatchClient:
    """One long-lived ``BatchServiceAsyncClient``, created on first use; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        policy: SubmitPolicy | None = None,
        *,
        poll_limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy if policy is not None else SUBMIT_POLICY
        self.poll_limiter = (
            poll_limiter if poll_limiter is not None else RateLimiter(settings.batch_poll_rate)
        )
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        """The API client, made on the first call (one per application)."""
        async with self._lock:
            if self._client is None:
                self._client = await self._make_client()
            return self._client

    async def _make_client(self) -> Any:
        endpoint = parse_endpoint(self.settings.batch_endpoint)
        batch = import_gcp("google.cloud.batch_v1", FEATURE)
        if endpoint.plain:
            grpc_aio = import_gcp("grpc.aio", FEATURE)
            transports = import_gcp(
                "google.cloud.batch_v1.services.batch_service.transports.grpc_asyncio", FEATURE
            )
            # A channel given to the transport carries no credentials: nothing is looked up.
            channel = grpc_aio.insecure_channel(endpoint.target)
            transport = transports.BatchServiceGrpcAsyncIOTransport(channel=channel)
            return batch.BatchServiceAsyncClient(transport=transport)
        credentials = await default_credentials(FEATURE, BatchNotConfiguredError)
        options = {"api_endpoint": endpoint.target} if endpoint.target else None
        return batch.BatchServiceAsyncClient(credentials=credentials, client_options=options)

    async def create_job(self, request: Any) -> Any:
        """Create the job of ``request`` (a ``CreateJobRequest``); the created ``Job``.

        Raises BatchApiError (502) when the API refuses it, ServiceUnavailableError (503)
        when it stayed unavailable until the policy's deadline.
        """
        client = await self.client()
        timeout = self.policy.attempt_timeout

        async def attempt() -> Any:
            return await client.create_job(request=request, retry=None, timeout=timeout)

        return await self._call(f"job {request.job_id}", attempt)

    async def get_job(self, name: str) -> Any:
        """The ``Job`` named ``name`` (``projects/P/locations/R/jobs/ID``), status included.

        Each attempt waits for the poll rate limit first. Raises BatchApiError (code
        ``NOT_FOUND`` once the job is gone), ServiceUnavailableError as :meth:`create_job`.
        """
        batch = import_gcp("google.cloud.batch_v1", FEATURE)
        client = await self.client()
        request = batch.GetJobRequest(name=name)
        timeout = self.policy.attempt_timeout

        async def attempt() -> Any:
            await self.poll_limiter.acquire()
            return await client.get_job(request=request, retry=None, timeout=timeout)

        return await self._call(f"GetJob {name}", attempt)

    async def delete_job(self, name: str) -> bool:
        """Start deleting the job named ``name``, which stops it if it runs; whether Batch took
        the deletion (False: the job was gone already, which counts as deleted too).

        Batch deletes asynchronously: the job may still be seen, ``DELETION_IN_PROGRESS``, for a
        while; its long-running operation is not waited for. Every attempt sends the same
        request id. Errors as :meth:`get_job`, NOT_FOUND excepted.
        """
        batch = import_gcp("google.cloud.batch_v1", FEATURE)
        client = await self.client()
        request = batch.DeleteJobRequest(name=name, request_id=str(uuid.uuid4()))
        timeout = self.policy.attempt_timeout

        async def attempt() -> Any:
            return await client.delete_job(request=request, retry=None, timeout=timeout)

        try:
            operation = await self._call(f"DeleteJob {name}", attempt)
        except BatchApiError as exc:
            if exc.code == "NOT_FOUND":
                log.info("Cloud Batch job %s is gone already: nothing to delete", name)
                return False
            raise
        log.info("deleting Cloud Batch job %s (operation %s)", name, operation.operation.name)
        return True

    async def _call(self, subject: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, retried by the policy on transient errors; errors as create_job's.

        ``subject`` names the call in messages and logs (``job ID``, ``GetJob NAME``).
        """
        return await call(FEATURE, subject, attempt, self.policy, BatchApiError)

    async def close(self) -> None:
        """Close the client's channel (at application shutdown)."""
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await client.transport.close()


def batch_client(context: InvokerContext) -> BatchClient:
    """The application's BatchClient, kept in ``context.clients`` (closed with the context)."""
    client = context.clients.get(CLIENT_KEY)
    if not isinstance(client, BatchClient):
        client = context.clients[CLIENT_KEY] = BatchClient(context.settings)
    return client


@dataclass(frozen=True)
class BatchJobs:
    """The Cloud Batch runs' status source for the reconciler (``wtrunner.job_tracking``)."""

    client: BatchClient
    noun: str = "Cloud Batch job"

    async def progress(self, name: str) -> JobProgress:
        """How the job named ``name`` is doing (GetJob); errors as BatchClient.get_job's."""
        return run_state_of(await self.client.get_job(name))

    async def stop(self, name: str) -> None:
        """Stop the job named ``name`` by deleting it (gone already counts as stopped)."""
        await self.client.delete_job(name)
