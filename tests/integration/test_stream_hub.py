"""The SSE hub in-process: a bounded window with `reset` for who falls out of it,
keep-alives, one listener shared by all subscribers, cleanup on disconnect."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anyio.to_thread
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from sluice.api import stream
from sluice.log import follow
from sluice.service import ingest
from sluice.store import connections
from tests.integration.reads_support import job


@dataclass
class Message:
    id: int | None = None
    event: str = "message"
    data: str | None = None
    comment: str | None = None


class Reader:
    """SSE messages, one at a time, from a stream whose writes each hold any number."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream
        self.pending: list[Message] = []
        self.writes = 0

    async def next(self, timeout: float = 10.0) -> Message:
        while not self.pending:
            chunk = await asyncio.wait_for(self.stream.__anext__(), timeout)
            self.writes += 1
            for block in chunk.decode().split("\n\n"):
                if block:
                    self.pending.append(parse(block))
        return self.pending.pop(0)

    async def aclose(self) -> None:
        await self.stream.aclose()  # type: ignore[attr-defined]


def parse(block: str) -> Message:
    m = Message()
    for line in block.split("\n"):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "":
            m.comment = value
        elif field == "id":
            m.id = int(value)
        elif field == "event":
            m.event = value
        elif field == "data":
            m.data = value
    return m


@pytest.fixture
def pool(fresh_db_url: str) -> Iterator[ConnectionPool]:
    p = ConnectionPool(fresh_db_url, min_size=1, max_size=4, open=False,
                       kwargs={"autocommit": True})
    p.open(wait=True)
    yield p
    p.close()


def _append(pool: ConnectionPool, cid: str, jid: str) -> int:
    with pool.connection() as conn:
        result = ingest.append(conn, cid, job(jid, time.time() - 1))
    assert result.last_position is not None
    return result.last_position


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_slow_subscriber_gets_reset_then_live_and_keepalive(
        pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.3)
    with pool.connection() as conn:
        cid = connections.create_connection(conn, "a")

    async def main() -> None:
        hub = follow.Hub(lambda: pool, retain=5)
        hub.start()
        await asyncio.wait_for(hub.listening.wait(), 10)
        slow = Reader(stream.event_stream(hub, cid, None, []))
        fast = Reader(stream.event_stream(hub, cid, None, ["job.succeeded"]))
        assert (await slow.next()).comment == "connected"
        assert (await fast.next()).comment == "connected"
        # 3 jobs x 4 events: more than the 5-event window while the slow client reads
        # nothing; the fast (filtered) one reads as they come
        last = 0
        got = []
        for i in range(3):
            last = await anyio.to_thread.run_sync(_append, pool, cid, f"j{i}")
            got.append(await fast.next())
        await _until(lambda: hub.cursor(cid) >= last)
        reset = await slow.next()
        assert reset.event == "reset" and reset.id == last
        assert json.loads(str(reset.data))["position"] == last
        # the fast client lost nothing: 3 succeeded events, in order
        assert [json.loads(str(m.data))["job_id"] for m in got] == ["j0", "j1", "j2"]
        # after the reset the slow client continues live from there
        nxt = await anyio.to_thread.run_sync(_append, pool, cid, "j3")
        live = await slow.next()
        assert live.id is not None and last < live.id <= nxt
        for _ in range(3):
            await slow.next()
        keepalive = await slow.next(5)
        assert keepalive.comment == "keep-alive" and keepalive.data is None
        # one channel, two subscribers; closing both frees the channel
        assert len(hub._channels) == 1 and len(hub._channels[cid].subscribers) == 2
        await slow.aclose()
        await fast.aclose()
        assert hub._channels == {}
        await hub.stop()

    asyncio.run(main())


def test_one_listener_connection_for_many_subscribers(pool: ConnectionPool,
                                                      fresh_db_url: str) -> None:
    with pool.connection() as conn:
        cid = connections.create_connection(conn, "a")

    def listeners() -> int:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'LISTEN%%'").fetchone()
            return int(row[0]) if row else 0

    async def main() -> None:
        hub = follow.Hub(lambda: pool)
        hub.start()
        await asyncio.wait_for(hub.listening.wait(), 10)
        gens = [Reader(stream.event_stream(hub, cid, None, [])) for _ in range(20)]
        for g in gens:
            await g.next()
        assert await anyio.to_thread.run_sync(listeners) == 1
        pos = await anyio.to_thread.run_sync(_append, pool, cid, "x")
        for g in gens:
            msgs = [await g.next() for _ in range(4)]
            assert msgs[-1].id == pos
            assert g.writes == 2  # connected, then the job's 4 events in one write
            await g.aclose()
        await hub.stop()

    asyncio.run(main())


def test_resume_from_an_unknown_future_id_does_not_stall(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        cid = connections.create_connection(conn, "a")
    before = _append(pool, cid, "old")

    async def main() -> None:
        hub = follow.Hub(lambda: pool)
        hub.start()
        await asyncio.wait_for(hub.listening.wait(), 10)
        gen = Reader(stream.event_stream(hub, cid, 10**12, []))  # e.g. a recreated database
        assert (await gen.next()).comment == "connected"
        pos = await anyio.to_thread.run_sync(_append, pool, cid, "new")
        msgs = [await gen.next(5) for _ in range(4)]
        assert [m.id for m in msgs][-1] == pos
        assert all(int(str(m.id)) > before for m in msgs)
        await gen.aclose()
        await hub.stop()

    asyncio.run(main())
