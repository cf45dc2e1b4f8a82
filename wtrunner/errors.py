"""The errors a client can see (the README's error table), raised anywhere and rendered by one
middleware.

Every layer raises these instead of aiohttp's HTTP exceptions, so the run path and the CLI can
use them without HTTP, and the error middleware turns each into its status and JSON body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Location = list[str | int]


class WtrunnerError(Exception):
    """Base of every error with a meaning for clients: an HTTP status and a JSON ``detail``."""

    status: int = 500

    def __init__(self, detail: Any, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def transient(self) -> bool:
        """Whether retrying the same request later may succeed (Pub/Sub redelivers these)."""
        return self.status in (503,)

    def body(self) -> dict[str, Any]:
        """The JSON body a client receives."""
        return {"detail": self.detail}


class RequestValidationError(WtrunnerError):
    """The request is malformed: pydantic-shaped items ``{type, loc, msg, input}`` (422)."""

    status = 422

    def __init__(self, items: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([dict(item) for item in items])

    @classmethod
    def single(
        cls, loc: Sequence[str | int], msg: str, input: Any = None, type: str = "value_error"
    ) -> RequestValidationError:
        """One problem with one field."""
        return cls([{"type": type, "loc": list(loc), "msg": msg, "input": input}])

    def placed(self, place: Callable[[Location], Location]) -> RequestValidationError:
        """The same problems with each ``loc`` turned by ``place``.

        The run core names fields plainly (``["results_url"]``); each front door places them
        where its client put them (``["query", "results_url"]``, ``["payload", ...]``, a flag).
        """
        return RequestValidationError(
            [{**item, "loc": place(list(item["loc"]))} for item in self.detail]
        )

    def __str__(self) -> str:
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in self.detail
        )


class SchemaValidationError(WtrunnerError):
    """Input failed the workflow's JSON Schema: jsonschema-native items (422)."""

    status = 422

    def __init__(self, items: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([dict(item) for item in items])

    def __str__(self) -> str:
        return "; ".join(str(item.get("message")) for item in self.detail)


class PackageNotFoundError(WtrunnerError):
    """No package matches the MatchSpec in any source (404)."""

    status = 404


class ServiceUnavailableError(WtrunnerError):
    """A channel, results store or other dependency cannot be reached right now (503)."""

    status = 503


class RunSlotsFullError(ServiceUnavailableError):
    """All run slots are busy and the wait queue is full (503 with Retry-After)."""

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class UpstreamError(WtrunnerError):
    """A workflow's metadata command failed or printed invalid JSON; a cloud API refused (502)."""

    status = 502


class AuthenticationError(WtrunnerError):
    """No credentials, or credentials that are not valid (401, ``WWW-Authenticate: Bearer``).

    ``invalid_token`` says a token was presented but refused (RFC 6750's ``invalid_token``).
    """

    status = 401

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer realm="wtrunner"'
        if invalid_token:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class PermissionDeniedError(WtrunnerError):
    """A known caller without the right to do this (403); ``scope`` names the one missing."""

    status = 403

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        headers = {}
        if scope is not None:
            headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{scope}"'
        super().__init__(detail, headers=headers)


class UnsupportedMediaTypeError(WtrunnerError):
    """A request body that is not of a type the operation takes (415)."""

    status = 415


class MisdirectedRequestError(WtrunnerError):
    """A request for a host name this server does not answer to (421)."""

    status = 421
