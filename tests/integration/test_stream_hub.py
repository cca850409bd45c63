"""The SSE hub in-process: bounded queues with `reset` on overflow, keep-alives, one
listener shared by all subscribers, cleanup on disconnect."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import anyio.to_thread
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from sluice.api import stream
from sluice.log import follow
from sluice.service import ingest
from sluice.store import connections
from tests.integration.reads_support import job


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
        hub = follow.Hub(lambda: pool, queue_size=5)
        hub.start()
        await asyncio.wait_for(hub.listening.wait(), 10)
        slow = stream.event_stream(hub, cid, None, [])
        fast = stream.event_stream(hub, cid, None, ["job.succeeded"])
        assert (await slow.__anext__()).comment == "connected"
        assert (await fast.__anext__()).comment == "connected"
        # 3 jobs x 4 events: more than the slow client's 5-slot queue while it reads nothing
        last = 0
        for i in range(3):
            last = await anyio.to_thread.run_sync(_append, pool, cid, f"j{i}")
        await _until(lambda: hub.cursor(cid) >= last)
        reset = await slow.__anext__()
        assert reset.event == "reset" and reset.id == last
        assert json.loads(str(reset.data))["position"] == last
        # the fast (filtered) client lost nothing: 3 succeeded events, in order
        got = [await fast.__anext__() for _ in range(3)]
        assert [json.loads(str(m.data))["job_id"] for m in got] == ["j0", "j1", "j2"]
        # after the reset the slow client continues live from there
        nxt = await anyio.to_thread.run_sync(_append, pool, cid, "j3")
        live = await slow.__anext__()
        assert live.id is not None and last < int(live.id) <= nxt
        for _ in range(3):
            await slow.__anext__()
        keepalive = await asyncio.wait_for(slow.__anext__(), 5)
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
        gens = [stream.event_stream(hub, cid, None, []) for _ in range(20)]
        for g in gens:
            await g.__anext__()
        assert await anyio.to_thread.run_sync(listeners) == 1
        pos = await anyio.to_thread.run_sync(_append, pool, cid, "x")
        for g in gens:
            msgs = [await g.__anext__() for _ in range(4)]
            assert msgs[-1].id == pos
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
        gen = stream.event_stream(hub, cid, 10**12, [])  # e.g. from a recreated database
        assert (await gen.__anext__()).comment == "connected"
        pos = await anyio.to_thread.run_sync(_append, pool, cid, "new")
        msgs = [await asyncio.wait_for(gen.__anext__(), 5) for _ in range(4)]
        assert [m.id for m in msgs][-1] == pos
        assert all(int(str(m.id)) > before for m in msgs)
        await gen.aclose()
        await hub.stop()

    asyncio.run(main())
