"""Readiness of the process: whether it should get new work, and how its parts are doing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Readiness:
    """Shared by ``/readyz`` and whatever begins shutdown or runs in the background.

    ``shutting_down`` makes ``/readyz`` answer 503 so a load balancer stops sending work.
    ``components`` holds reports of background parts (e.g. the Pub/Sub consumer) that are shown
    in ``/readyz``'s body without failing it: the pod still serves HTTP when they are in trouble.
    """

    shutting_down: bool = False
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    def begin_shutdown(self) -> None:
        """From now on ``/readyz`` answers 503."""
        self.shutting_down = True

    def report(self, component: str, **status: Any) -> None:
        """Record the latest status of a background component."""
        self.components[component] = status
