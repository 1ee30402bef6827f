"""Capped exponential backoff with jitter (pure: the random source is injectable)."""

from __future__ import annotations

import random
from typing import Callable, Optional


class Backoff:
    """1 s, 2 s, 4 s ... up to ``maximum``, each stretched by up to ``jitter`` of itself.

    The stretch spreads a fleet of clients that failed together, so they don't all come back at
    the same instant; it never shortens a delay, so the floor stays ``initial``.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 120.0,
        jitter: float = 0.25,
        rand: Optional[Callable[[], float]] = None,
    ):
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rand = rand or random.random
        self._nominal = initial
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self._nominal * (1.0 + self.jitter * self._rand()))
        self._nominal = min(self.maximum, self._nominal * 2)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self._nominal = self.initial
        self.failures = 0
