"""What an authenticated caller may do: the scopes a token line or an OIDC caller names."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Scope(str, enum.Enum):
    """One right of a caller.

    ``run``: start runs, cancel and delete its own; ``read``: its own runs and their logs, the
    workflows' metadata and the catalogue; ``admin``: both, on everyone's runs.
    """

    RUN = "run"
    READ = "read"
    ADMIN = "admin"


DEFAULT_SCOPES = frozenset({Scope.RUN, Scope.READ})
"""What a caller gets when its line or entry names no scopes."""


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """The scopes ``names`` name (surrounding blanks ignored); a ValueError names an unknown
    one and lists the known ones. No names at all is a ValueError too."""
    scopes = set()
    for raw in names:
        name = raw.strip()
        try:
            scopes.add(Scope(name))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise ValueError(f"unknown scope {name!r} (known: {known})") from None
    if not scopes:
        raise ValueError("no scope named")
    return frozenset(scopes)
