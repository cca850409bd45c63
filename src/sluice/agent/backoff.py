"""Exponential backoff with jitter, for reconnecting to a lost broker."""

from __future__ import annotations

import logging
import random

log = logging.getLogger("sluice.agent")


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

    def after_failure(self, exc: BaseException, what: str,
                      expected: type[BaseException] | tuple[type[BaseException], ...]) -> float:
        """Log a lost connection (with a traceback when it is not an `expected` broker error)
        and return how long to wait before the next attempt."""
        if not isinstance(exc, expected):
            log.exception("%s: unexpected error", what)
        delay = self.next_delay()
        log.warning("%s: %s: %s; reconnect attempt %d in %.1fs", what, type(exc).__name__, exc,
                    self.attempt, delay)
        return delay
