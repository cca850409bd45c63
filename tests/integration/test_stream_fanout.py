"""SSE fan-out cost: each event is encoded once per process whatever the number of
subscribers, a subscriber gets all it has not been sent in one write, and a subscriber
that reads nothing costs the others nothing (no per-subscriber copy of the events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from psycopg_pool import ConnectionPool

from sluice.api import stream
from sluice.log import follow
from sluice.service import ingest
from sluice.store import connections
from tests.integration.reads_support import job

SUBSCRIBERS = 20


@pytest.fixture
def pool(fresh_db_url: str) -> Iterator[ConnectionPool]:
    p = ConnectionPool(fresh_db_url, min_size=1, max_size=4, open=False,
                       kwargs={"autocommit": True})
    p.open(wait=True)
    yield p
    p.close()


class CountingEncoder:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def encode(self, value: Any) -> bytes:
        self.calls += 1
        return bytes(self.inner.encode(value))


def _events_in(write: Any) -> int:
    if isinstance(write, bytes):
        return write.count(b"\ndata: ") + write.startswith(b"data: ")
    return 1 if getattr(write, "id", None) is not None else 0


def test_one_encode_per_event_and_one_write_per_batch(
        pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingEncoder(stream.__dict__.get("EVENT_ENCODER") or follow.EVENT_ENCODER)
    for module in (stream, follow):
        monkeypatch.setattr(module, "EVENT_ENCODER", counter, raising=False)
    with pool.connection() as conn:
        cid = connections.create_connection(conn, "a")
    events = [e for i in range(25) for e in job(f"j{i}", time.time() - 5)]  # 100 events

    async def main() -> None:
        hub = follow.Hub(lambda: pool)
        hub.start()
        await asyncio.wait_for(hub.listening.wait(), 10)
        subs = [stream.event_stream(hub, cid, None, []) for _ in range(SUBSCRIBERS)]
        idle = stream.event_stream(hub, cid, None, [])  # never read after connecting
        for s in [*subs, idle]:
            await s.__anext__()  # connected
        with pool.connection() as conn:
            await anyio.to_thread.run_sync(ingest.append, conn, cid, events)
        writes = []
        for s in subs:
            got = n = 0
            while got < len(events):
                got += _events_in(await asyncio.wait_for(s.__anext__(), 10))
                n += 1
            writes.append(n)
        assert counter.calls == len(events), "each event encoded once, not per subscriber"
        assert max(writes) <= 2, writes  # the batch in one write (two if it spanned pages)
        for s in [*subs, idle]:
            await s.aclose()  # type: ignore[attr-defined]
        await hub.stop()

    asyncio.run(main())
