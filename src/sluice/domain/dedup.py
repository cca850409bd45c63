"""The dedup key: the identity of one source event, computed alike by SDK, agent and API."""

from __future__ import annotations

import hashlib


def dedup_key(
    kind: str,
    subject: str | None,
    hostname: str | None,
    clock: int | None,
    timestamp: float,
    variant: str = "",
) -> str:
    """Hash of the event's identity. `repr(float)` round-trips JSON exactly, so an event
    seen in-process (SDK) and decoded from the broker (agent) gives the same key."""
    ident = "\x1f".join(
        (
            kind,
            subject or "",
            hostname or "",
            "" if clock is None else str(clock),
            repr(float(timestamp)),
            variant,
        )
    )
    return hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
