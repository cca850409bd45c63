"""Exponential backoff with jitter, for reconnecting to a lost broker."""

from __future__ import annotations

import random


class Backoff:
    """Delays initial, 2*initial, ... capped at `maximum`, each scaled by a random factor in
    [0.5, 1] so that many agents restarted together do not reconnect in lockstep."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return base * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0
