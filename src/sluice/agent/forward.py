"""Broker message -> Celery event dicts -> unified events -> the sink. Shared by readers."""

from __future__ import annotations

from typing import Any

from sluice.domain.celery import normalize
from sluice.domain.events import Rejection

from .envelope import Undecodable, decode_envelope
from .health import Health
from .sink import Sink


class Forwarder:
    def __init__(self, sink: Sink, health: Health, connection_id: str | None) -> None:
        self.sink = sink
        self.health = health
        self.connection_id = connection_id

    def envelope(self, data: bytes | str) -> None:
        """A Redis pub/sub payload. Never raises: bad input is counted, not fatal."""
        try:
            events = decode_envelope(data)
        except Undecodable as bad:
            self.health.count_undecodable(bad.kind, bad.detail)
            return
        self.events(events)

    def events(self, raws: list[dict[str, Any]]) -> None:
        health, submit, cid = self.health, self.sink.submit, self.connection_id
        for raw in raws:
            health.events_in += 1
            event = normalize(raw, cid)
            if isinstance(event, Rejection):
                health.count_undecodable(f"event rejected: {event.reason}", repr(raw)[:200])
                continue
            health.observe(event.timestamp)
            submit(event)
