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
    ident = (f"{kind}\x1f{subject or ''}\x1f{hostname or ''}\x1f"
             f"{'' if clock is None else clock}\x1f{float(timestamp)!r}\x1f{variant}")
    return hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
