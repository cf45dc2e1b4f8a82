"""Exponential backoff with jitter, for loops that retry a dependency that went away."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from ``first`` up to ``maximum``, each jittered by ``jitter``.

    ``next_delay()`` gives the pause before the next attempt; ``reset()`` after a success.
    """

    first: float
    maximum: float
    multiplier: float = 2.0
    jitter: float = 0.2
    _current: float = field(init=False)

    def __post_init__(self) -> None:
        self._current = self.first

    def next_delay(self) -> float:
        """The pause before the next attempt (and grow the one after it)."""
        delay = self._current * random.uniform(1 - self.jitter, 1 + self.jitter)
        self._current = min(self._current * self.multiplier, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from ``first`` (after an attempt succeeded)."""
        self._current = self.first
