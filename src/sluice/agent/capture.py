"""What the agent does with task arguments and results: strips them unless started with
`--capture-args` (as the SDK does unless `capture_args=True`); when captured, scrubs them
with the SDK's rules (`sluice.domain.privacy`), so either copy of an event is the same."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.domain.events import Event
from sluice.domain.privacy import Rules, protect, strip


@dataclass(frozen=True)
class Capture:
    """Picklable: the agent's worker processes get it at start."""

    enabled: bool = False
    rules: Rules = field(default_factory=Rules)

    def apply(self, event: Event) -> Event:
        return protect(event, self.rules) if self.enabled else strip(event)
