"""What the agent sends to: `sluice.transport.Transport`, or a test double with its methods."""

from __future__ import annotations

from typing import Protocol

from sluice.domain.events import Event


class Sink(Protocol):
    def submit(self, event: Event) -> None: ...  # must never raise nor block

    def stats(self) -> dict[str, int]: ...
