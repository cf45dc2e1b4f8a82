"""From a MatchSpec to a runnable workflow prefix, with py-rattler.

- :mod:`.matchspec`: parsing the MatchSpec a run asks for (a bad one is the client's mistake);
- :mod:`.resolver`: installed prefixes first, then channels (solve and install), the
  :class:`Environments` that ties it together;
- :mod:`.activation`: each prefix's activation variables, captured once;
- :mod:`.cache`: the installed environments, bounded by count and size, LRU, with leases.
"""

from __future__ import annotations

from .activation import BASE_PATH, Activations, capture_activation
from .cache import METADATA_FILE, EnvironmentCache
from .matchspec import package_name, parse_matchspec
from .resolver import (
    Environment,
    Environments,
    Resolution,
    ResolutionStats,
    channel_url,
)

__all__ = [
    "BASE_PATH",
    "METADATA_FILE",
    "Activations",
    "Environment",
    "EnvironmentCache",
    "Environments",
    "Resolution",
    "ResolutionStats",
    "capture_activation",
    "channel_url",
    "package_name",
    "parse_matchspec",
]
