"""What the Google Cloud API clients of the back ends share: where a client connects, its
credentials, and how one call is retried and its refusal reported.

- An endpoint setting (``WTRUNNER_BATCH_ENDPOINT``, ``WTRUNNER_CLOUD_RUN_ENDPOINT``) is empty
  (Google's, with Application Default Credentials, looked up in a worker thread: on GKE that
  asks the metadata server), ``http://host:port`` (a plain, unauthenticated gRPC connection for
  local emulation and tests: no credentials are looked up at all), or ``https://host[:port]`` /
  ``host[:port]`` (that endpoint over TLS, with ADC).
- A call is retried on UNAVAILABLE and DEADLINE_EXCEEDED by google-api-core's ``AsyncRetry``
  (:class:`CallPolicy`: exponential backoff with jitter within a deadline); still unavailable at
  the deadline: ServiceUnavailableError (503). Every other API error is final: a
  :class:`GcpApiError` (502) naming its gRPC status.

Google's libraries are imported only when a call needs them (``wtrunner[gcp]``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread

from ..errors import ServiceUnavailableError, UpstreamError, WtrunnerError
from ..gcp import import_gcp

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

T = TypeVar("T")


class GcpApiError(UpstreamError):
    """A Google Cloud API refused a call (502); ``code`` is the gRPC status name."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class CallPolicy:
    """How an API call is retried: backoff from ``first_delay`` by ``multiplier`` up to
    ``max_delay`` while ``deadline`` seconds last, each attempt within ``attempt_timeout``."""

    first_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 4.0
    deadline: float = 60.0
    attempt_timeout: float = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects: ``target`` (``host:port``, empty = Google's) and how."""

    target: str
    plain: bool


def parse_endpoint(value: str, variable: str, error: type[WtrunnerError]) -> Endpoint:
    """The endpoint setting ``variable`` (its ``value``) as an :class:`Endpoint`; ``error``
    naming the variable when it is unusable."""
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
        raise error(
            f"{variable} must be host[:port], https://host[:port] or "
            f"http://host:port (a plain connection), not {value!r}"
        )
    return Endpoint(parts.netloc, plain=parts.scheme == "http")


async def default_credentials(feature: str, error: type[WtrunnerError]) -> Any:
    """Application Default Credentials, looked up in a worker thread; ``error`` (naming
    ``feature``) when there are none."""
    auth = import_gcp("google.auth", feature)
    auth_exceptions = import_gcp("google.auth.exceptions", feature)
    lookup = functools.partial(auth.default, scopes=[CLOUD_PLATFORM_SCOPE])
    try:
        credentials, _ = await anyio.to_thread.run_sync(lookup)
    except auth_exceptions.GoogleAuthError as exc:
        raise error(
            f"{feature} needs Google credentials (Application Default Credentials): {exc}"
        ) from None
    return credentials


async def call(
    feature: str,
    subject: str,
    attempt: Callable[[], Awaitable[T]],
    policy: CallPolicy,
    error: type[GcpApiError],
) -> T:
    """``attempt()``, retried by ``policy`` on transient errors (see the module docstring).

    ``subject`` names the call in messages and logs (``job ID``, ``GetJob NAME``); a refusal
    is ``error`` ("the {feature} API refused {subject}: ...").
    """
    exceptions = import_gcp("google.api_core.exceptions", feature)
    retry_async = import_gcp("google.api_core.retry_async", feature)
    attempts = 0

    def on_error(exc: Exception) -> None:
        nonlocal attempts
        attempts += 1
        log.warning("%s %s, attempt %d: %s; retrying", feature, subject, attempts, describe(exc))

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
            f"the {feature} API was not available for {subject} (tried {attempts} times): {reason}"
        ) from None
    except exceptions.GoogleAPICallError as exc:
        detail = f"the {feature} API refused {subject}: {describe(exc)}"
        raise error(detail, status_name(exc)) from None
    return result


def status_name(exc: Any) -> str:
    """The gRPC status name of an API error (``NOT_FOUND``), or its HTTP code."""
    code = exc.grpc_status_code
    return str(code.name) if code is not None else str(exc.code)


def describe(exc: Any) -> str:
    """``NotFound (NOT_FOUND): <message>``: an API error named as a client can look it up."""
    return f"{type(exc).__name__} ({status_name(exc)}): {exc.message}"
