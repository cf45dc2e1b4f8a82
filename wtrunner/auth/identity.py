"""An authenticated caller: its name (what runs record as their ``client``) and its scopes."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from ..scopes import Scope


@dataclass(frozen=True)
class Identity:
    """A caller the server recognised. ``name`` is never a secret: it is logged and recorded."""

    name: str
    scopes: frozenset[Scope]

    @property
    def is_admin(self) -> bool:
        """Whether the caller reaches everyone's runs, not only its own."""
        return Scope.ADMIN in self.scopes

    def allows(self, scope: Scope) -> bool:
        """Whether the caller has ``scope`` (``admin`` has every scope)."""
        return scope in self.scopes or self.is_admin

    def may_see(self, client: str | None) -> bool:
        """Whether a run recorded for ``client`` is one this caller may see and act on."""
        return self.is_admin or client == self.name


current_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "current_identity", default=None
)
"""The caller of the request being handled; None when authentication is off (everyone may
see everything then) or the route is open."""


def may_see(client: str | None) -> bool:
    """Whether the current caller may see a run recorded for ``client`` (always, without one)."""
    identity = current_identity.get()
    return identity is None or identity.may_see(client)


def visible_client() -> str | None:
    """The ``client`` the current caller's run lists are limited to; None: every run."""
    identity = current_identity.get()
    if identity is None or identity.is_admin:
        return None
    return identity.name


def current_client_name() -> str | None:
    """The name runs started now are recorded for (their ``client``); None: anonymous."""
    identity = current_identity.get()
    return identity.name if identity is not None else None
