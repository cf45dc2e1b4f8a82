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
that is gone already counts as deleted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread

from ..errors import ServiceUnavailableError, UpstreamError, WtrunnerError
from ..gcp import import_gcp
from ..ratelimit import RateLimiter
from ..settings import Settings
from .base import InvokerContext

log = logging.getLogger(__name__)

FEATURE = "Cloud Batch"
CLIENT_KEY = "CloudBatchInvoker"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

T = TypeVar("T")


class BatchNotConfiguredError(WtrunnerError):
    """Cloud Batch cannot be used with this server's settings or credentials (500)."""

    status = 500


class BatchApiError(UpstreamError):
    """The Batch API refused the job (502); ``code`` is the gRPC status name."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class SubmitPolicy:
    """How a Batch API call (submission, look-up, deletion) is retried: backoff from
    ``first_delay`` by ``multiplier`` up to ``max_delay`` while ``deadline`` seconds last, each
    attempt within ``attempt_timeout``."""

    first_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 4.0
    deadline: float = 60.0
    attempt_timeout: float = 30.0


SUBMIT_POLICY = SubmitPolicy()


@dataclass(frozen=True)
class Endpoint:
    """Where the client connects: ``target`` (``host:port``, empty = Google's) and how."""

    target: str
    plain: bool


def parse_endpoint(value: str) -> Endpoint:
    """``WTRUNNER_BATCH_ENDPOINT`` as an :class:`Endpoint` (BatchNotConfiguredError if unusable)."""
    text = value.strip()
    if not text:
        return Endpoint("", plain=False)
    parts = urlsplit(text if "://" in text else f"https://{text}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
        or port == -1
        or (parts.scheme == "http" and port is None)
    ):
        raise BatchNotConfiguredError(
            "WTRUNNER_BATCH_ENDPOINT must be host[:port], https://host[:port] or "
            f"http://host:port (a plain connection), not {value!r}"
        )
    return Endpoint(parts.netloc, plain=parts.scheme == "http")


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
        credentials = await self._default_credentials()
        options = {"api_endpoint": endpoint.target} if endpoint.target else None
        return batch.BatchServiceAsyncClient(credentials=credentials, client_options=options)

    async def _default_credentials(self) -> Any:
        auth = import_gcp("google.auth", FEATURE)
        auth_exceptions = import_gcp("google.auth.exceptions", FEATURE)
        lookup = functools.partial(auth.default, scopes=[CLOUD_PLATFORM_SCOPE])
        try:
            credentials, _ = await anyio.to_thread.run_sync(lookup)
        except auth_exceptions.GoogleAuthError as exc:
            raise BatchNotConfiguredError(
                f"Cloud Batch needs Google credentials (Application Default Credentials): {exc}"
            ) from None
        return credentials

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
        exceptions = import_gcp("google.api_core.exceptions", FEATURE)
        retry_async = import_gcp("google.api_core.retry_async", FEATURE)
        attempts = 0

        def on_error(exc: Exception) -> None:
            nonlocal attempts
            attempts += 1
            log.warning("Cloud Batch %s, attempt %d: %s; retrying",
                        subject, attempts, describe(exc))  # fmt: skip

        policy = self.policy
        retry = retry_async.AsyncRetry(
            predicate=retry_async.if_exception_type(
                exceptions.ServiceUnavailable, exceptions.DeadlineExceeded
            ),
            initial=policy.first_delay,
            maximum=policy.max_delay,
            multiplier=policy.multiplier,
            timeout=policy.deadline,
            on_error=on_error,
        )
        try:
            result: T = await retry(attempt)()
        except exceptions.RetryError as exc:
            cause = exc.cause
            reason = (
                describe(cause)
                if isinstance(cause, exceptions.GoogleAPICallError)
                else str(cause or exc)
            )
            raise ServiceUnavailableError(
                f"the Cloud Batch API was not available for {subject} "
                f"(tried {attempts} times): {reason}"
            ) from None
        except exceptions.GoogleAPICallError as exc:
            raise BatchApiError(
                f"the Cloud Batch API refused {subject}: {describe(exc)}", status_name(exc)
            ) from None
        return result

    async def close(self) -> None:
        """Close the client's channel (at application shutdown)."""
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await client.transport.close()


def status_name(exc: Any) -> str:
    """The gRPC status name of an API error (``NOT_FOUND``), or its HTTP code."""
    code = exc.grpc_status_code
    return str(code.name) if code is not None else str(exc.code)


def describe(exc: Any) -> str:
    """``NotFound (NOT_FOUND): <message>``: an API error named as a client can look it up."""
    return f"{type(exc).__name__} ({status_name(exc)}): {exc.message}"


def batch_client(context: InvokerContext) -> BatchClient:
    """The application's BatchClient, kept in ``context.clients`` (closed with the context)."""
    client = context.clients.get(CLIENT_KEY)
    if not isinstance(client, BatchClient):
        client = context.clients[CLIENT_KEY] = BatchClient(context.settings)
    return client
