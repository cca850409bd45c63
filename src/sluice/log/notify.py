"""The notification an append sends when it commits: its channel and payload, defined here
only (the append's SQL takes both as parameters)."""

from __future__ import annotations

from typing import Final

CHANNEL: Final = "sluice_events"
_SEP: Final = ":"


def prefix(connection_id: str) -> str:
    """What precedes the last position in the payload (the append's SQL appends it)."""
    return connection_id + _SEP


def payload(connection_id: str, position: int) -> str:
    return prefix(connection_id) + str(position)


def parse(text: str) -> tuple[str, int | None]:
    """(connection id, last position appended), the position None when unreadable."""
    connection_id, _, position = text.partition(_SEP)
    return connection_id, int(position) if position.isdigit() else None
