"""Why the server rejected events, logged once per distinct reason, a few lines a minute.

Rejected events are not retried (the same event would be rejected again), so without a log
line they would vanish with only `stats()["rejected"]` to show for it. A reason is the
server's text plus the field it names; one that recurs is not logged again. Memory is bounded
(the reasons remembered), and so is the log: past `per_window` lines in a window, a reason
is left unmarked, so it is logged when it recurs in a later window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol

MAX_REASONS: Final = 100
PER_WINDOW: Final = 5
WINDOW_S: Final = 60.0
_MAX_REASON_CHARS: Final = 300


class Rejected(Protocol):
    @property
    def reason(self) -> str: ...

    @property
    def field(self) -> str | None: ...


class RejectionLog:
    def __init__(self, logger: logging.Logger, *, max_reasons: int = MAX_REASONS,
                 per_window: int = PER_WINDOW, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._max_reasons = max_reasons
        self._per_window = per_window
        self._window_s = window_s
        self._clock = clock
        self._seen: set[tuple[str, str | None]] = set()
        self._window_start = float("-inf")
        self._in_window = 0
        self._held_back = 0  # rejections not logged for the rate limit, told with the next

    def note(self, rejected: Iterable[Rejected]) -> None:
        """The rejections of one batch (the server's answer); never raises."""
        try:
            counts: dict[tuple[str, str | None], int] = {}
            for item in rejected:
                key = (str(item.reason)[:_MAX_REASON_CHARS] or "no reason given",
                       item.field if isinstance(item.field, str) else None)
                counts[key] = counts.get(key, 0) + 1
            for key, count in counts.items():
                if key not in self._seen:
                    self._log_new(key, count)
        except Exception:
            self._logger.debug("sluice: cannot log a rejection", exc_info=True)

    def _log_new(self, key: tuple[str, str | None], count: int) -> None:
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self._window_start, self._in_window = now, 0
        if self._in_window >= self._per_window:
            self._held_back += count
            return
        self._in_window += 1
        if len(self._seen) < self._max_reasons:
            self._seen.add(key)
        reason, field = key
        more = (f"; {self._held_back} other rejected events were not logged (rate limit)"
                if self._held_back else "")
        self._held_back = 0
        self._logger.error(
            "sluice: the server rejected %d event%s: %s%s. Rejected events are dropped, not "
            "retried; this reason is logged once (sluice.stats()['rejected'] counts them all)%s",
            count, "" if count == 1 else "s", reason,
            f" (field {field!r})" if field else "", more)
