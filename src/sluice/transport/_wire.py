"""The ingest wire format: batch bodies, the 202 answer, Retry-After, and backoff."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterable
from typing import Final

import msgspec

# Server limits per batch (see the ingest contract).
MAX_BATCH_EVENTS: Final = 5_000
MAX_BATCH_BYTES: Final = 5 * 1024 * 1024
_PREFIX: Final = b'{"events":['
_SUFFIX: Final = b"]}"
_MAX_RETRY_AFTER_S: Final = 600.0


class RejectedItem(msgspec.Struct):
    index: int
    reason: str = ""
    field: str | None = None


class IngestAnswer(msgspec.Struct):
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedItem] = []


_ANSWER_DECODER: Final = msgspec.json.Decoder(IngestAnswer)


def decode_answer(body: bytes) -> IngestAnswer | None:
    try:
        return _ANSWER_DECODER.decode(body)
    except Exception:
        return None


def chunk(encoded: Iterable[bytes], max_events: int, max_bytes: int = MAX_BATCH_BYTES) -> (
    list[list[bytes]]
):
    """Split encoded events into batches under the event and (decompressed) size limits.
    An event too large for any batch is left out (the caller counts what is missing)."""
    overhead = len(_PREFIX) + len(_SUFFIX)
    chunks: list[list[bytes]] = []
    cur: list[bytes] = []
    size = overhead
    for item in encoded:
        if len(item) + overhead > max_bytes:
            continue
        if cur and (len(cur) >= max_events or size + len(item) + 1 > max_bytes):
            chunks.append(cur)
            cur, size = [], overhead
        cur.append(item)
        size += len(item) + 1
    if cur:
        chunks.append(cur)
    return chunks


def gzip_body(encoded: list[bytes]) -> bytes:
    # Level 1: events compress ~10x even so, and the sender shares the GIL with tasks.
    return gzip.compress(_PREFIX + b",".join(encoded) + _SUFFIX, compresslevel=1)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the server sends seconds); None if absent or unparsable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, _MAX_RETRY_AFTER_S)


def backoff_delay(attempt: int, cap: float, base: float = 0.5) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries from many
    workers spread out but never collapse to zero."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
