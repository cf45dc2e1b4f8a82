"""The authentication middleware: the caller of every guarded operation, before its handler.

Each operation's :class:`Access` says what it needs; open ones (health probes, the OpenAPI
document) and routes outside the table pass untouched. A guarded one needs
``Authorization: Bearer <token>`` proving an identity with the scope (401 with
``WWW-Authenticate: Bearer`` without one, 403 without the scope). The identity is the current
one (:data:`~wtrunner.auth.identity.current_identity`) while the handler runs, and its name
is on every log line of the request. The token itself is never logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from ..auth.identity import Identity, current_identity
from ..errors import AuthenticationError, PermissionDeniedError
from ..keys import AUTH
from ..logs import current_client
from ..scopes import Scope
from .access import AccessPolicy
from .operations import Access, Handler

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 16384
SCOPE_OF = {Access.READ: Scope.READ, Access.RUN: Scope.RUN, Access.METRICS: Scope.READ,
            Access.PUSH: Scope.RUN}  # fmt: skip


def bearer_token(request: web.Request) -> str:
    """The token of ``Authorization: Bearer <token>``; AuthenticationError without one."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("authentication required: send Authorization: Bearer <token>")
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise AuthenticationError("the bearer token is not valid", invalid_token=True)
    return token


@contextlib.contextmanager
def acting_as(identity: Identity) -> Iterator[None]:
    """The current identity (and log lines' client) is ``identity`` inside the block."""
    identity_token = current_identity.set(identity)
    client_token = current_client.set(identity.name)
    try:
        yield
    finally:
        current_client.reset(client_token)
        current_identity.reset(identity_token)


def auth_middleware(policy: AccessPolicy) -> Middleware:
    """The middleware that authenticates the callers of guarded operations (see the module)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        access = policy.access(request)
        if not policy.needs_caller(access):
            return await handler(request)
        authenticator = request.app[AUTH]
        if not authenticator.enabled and not (
            access is Access.PUSH and authenticator.verifies_push
        ):
            return await handler(request)
        try:
            identity = await _identify(request, access)
        except (AuthenticationError, PermissionDeniedError) as exc:
            log.info("refused %s %s (%d): %s", request.method, request.path, exc.status,
                     exc.detail)  # fmt: skip
            raise
        with acting_as(identity):
            return await handler(request)

    return authenticate


async def _identify(request: web.Request, access: Access) -> Identity:
    authenticator = request.app[AUTH]
    token = bearer_token(request)
    if access is Access.PUSH and authenticator.verifies_push:
        return await authenticator.identify_push(token)
    identity = await authenticator.identify(token)
    scope = SCOPE_OF[access]
    if not identity.allows(scope):
        raise PermissionDeniedError(
            f"{identity.name} may not do this: it needs the {scope.value} scope",
            scope=scope.value,
        )
    return identity
