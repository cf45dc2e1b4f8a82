"""Which access each route needs (from the route table's :class:`Access`), found per request."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from .operations import Access, Operation


class AccessPolicy:
    """The access rule of every operation, by method and path template.

    A route outside the table (the console's pages, CORS preflights, a 404) is open: what it
    serves is no one's data, and the operations behind it check their callers themselves.
    """

    def __init__(self, operations: Iterable[Operation], metrics_auth: bool = False) -> None:
        self._access = {(op.method, op.path): op.access for op in operations}
        self.metrics_auth = metrics_auth

    def access(self, request: web.Request) -> Access:
        """The access rule of the operation ``request`` was routed to."""
        resource = request.match_info.route.resource
        if resource is None:
            return Access.OPEN
        return self._access.get((request.method, resource.canonical), Access.OPEN)

    def needs_caller(self, access: Access) -> bool:
        """Whether an operation of ``access`` needs an authenticated caller (when
        authentication is on): all but the open ones, and ``/metrics`` only by setting."""
        return access is not Access.OPEN and (access is not Access.METRICS or self.metrics_auth)
