"""The dedup key: the identity of one source event, computed alike by SDK, agent and API."""

from __future__ import annotations

import math
import struct
from hashlib import blake2b

_DOUBLE = struct.Struct("<d").pack  # a float's exact bits: equal floats, equal bytes
_TIME = struct.Struct(">Q").pack
_TIME_SPAN = 1 << 56  # 7 bytes of epoch microseconds: fixed width until the year 4253


def dedup_key(
    kind: str,
    subject: str | None,
    hostname: str | None,
    clock: int | None,
    timestamp: float,
    variant: str = "",
) -> str:
    """Hex of the source time (epoch microseconds, 7 bytes) then of a hash of the event's
    identity, which includes that time exactly.

    The time comes first so keys sort by source time: the log's unique index then takes new
    keys at its recent edge, not at random pages (whose working set is a whole day's index).
    A float goes into the hash as its bits, so an event seen in-process (SDK) and decoded
    from the broker's JSON (agent) gives the same key."""
    stamp = float(timestamp)
    ident = (f"{kind}\x1f{subject or ''}\x1f{hostname or ''}\x1f"
             f"{'' if clock is None else clock}\x1f{variant}").encode("utf-8", "surrogatepass")
    scaled = stamp * 1_000_000  # a finite stamp may still overflow to inf here
    micros = int(scaled) % _TIME_SPAN if math.isfinite(scaled) else 0
    return (_TIME(micros)[1:] + blake2b(ident + _DOUBLE(stamp), digest_size=12).digest()).hex()
