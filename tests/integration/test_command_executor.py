"""The executor below the API: its tick picks up commands that waited (a broker set only
after the request) and closes bulk actions whose jobs are all done, on a real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from sluice.domain.actions import Action
from sluice.domain.commands import Outcome
from sluice.domain.commands import finished as finished_event
from sluice.service import commands, ingest
from sluice.service.command_executor import CommandExecutor
from sluice.service.processors import process_pending, run_tick
from sluice.store import connections
from sluice.views.commands import reader
from tests.integration.commands_support import job_in_state, redis_broker


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with redis_broker() as url:
        yield url


def _status(db: psycopg.Connection, cid: str, command_id: str) -> str:
    found = reader.get_command(db, cid, command_id)
    assert found is not None
    return found.status


def test_the_tick_runs_commands_that_waited_for_a_broker(db: psycopg.Connection,
                                                         broker: str) -> None:
    cid = connections.create_connection(db, "late-broker")
    connections.executor_seen(db, cid)  # an agent executor was there: requests are taken
    job_id, events = job_in_state("queued")
    ingest.append(db, cid, events)
    requested = commands.request_job_action(db, cid, Action.REVOKE, job_id, by="key:t")
    executor = CommandExecutor(stale_s=0.0)
    try:
        assert process_pending(db, executor, cid).appended == 0  # no broker: left alone
        assert _status(db, cid, requested.command_id) == "requested"
        connections.set_broker(db, cid, broker_url=broker)  # the operator sets it later
        assert run_tick(db, executor, time.time()).appended == 1
        assert _status(db, cid, requested.command_id) == "succeeded"
        assert run_tick(db, executor, time.time()).appended == 0  # once
    finally:
        executor.close()


def test_the_tick_closes_a_bulk_whose_jobs_are_done(db: psycopg.Connection,
                                                    broker: str) -> None:
    cid = connections.create_connection(db, "bulk", broker_url=broker)
    ids = []
    for _ in range(3):
        job_id, events = job_in_state("queued")
        ingest.append(db, cid, events)
        ids.append(job_id)
    bulk = commands.request_bulk(db, cid, Action.REVOKE, by="key:t", ids=ids)
    children = reader.list_commands(db, cid, reader.CommandFilter(bulk_id=bulk.command_id))
    # two executors each finished a last job: neither saw the bulk complete
    ingest.append(db, cid, [finished_event(Outcome(command_id=c.id, ok=i != 0,
                                                   reason=None if i else "no"),
                                           at=time.time(), job_id=c.job_id,
                                           bulk_id=bulk.command_id)
                            for i, c in enumerate(children.items)])
    row = db.execute("SELECT status FROM commands WHERE command_id = %s",
                     (bulk.command_id,)).fetchone()
    assert row == ("requested",)
    executor = CommandExecutor(stale_s=0.0)
    try:
        assert run_tick(db, executor, time.time()).appended == 1
    finally:
        executor.close()
    found = reader.get_command(db, cid, bulk.command_id)
    assert found is not None and found.status == "failed"
    assert found.reason == "1 of 3 jobs failed" and found.progress is not None
    assert found.progress.done == 3


def test_replay_rebuilds_the_commands_from_the_log(db: psycopg.Connection,
                                                   broker: str) -> None:
    from sluice.service import rebuild

    cid = connections.create_connection(db, "replayed", broker_url=broker)
    ids = []
    for state in ("queued", "failed", "completed"):
        job_id, events = job_in_state(state)
        ingest.append(db, cid, events)
        ids.append(job_id)
    commands.request_bulk(db, cid, Action.REVOKE, by="key:t", ids=ids)
    commands.request_job_action(db, cid, Action.REVOKE, ids[0], by="key:t",
                                params={"terminate": True, "signal": "SIGKILL"})
    executor = CommandExecutor()
    try:
        process_pending(db, executor, cid)
    finally:
        executor.close()
    dump = "SELECT * FROM commands ORDER BY command_id"
    before = db.execute(dump).fetchall()
    assert len(before) == 5 and {r[3] for r in before} == {"succeeded", "failed"}
    db.execute("DELETE FROM commands")  # a damaged read model
    stats = rebuild.rebuild(db, ["commands"])
    assert stats.models == ["commands"]
    assert db.execute(dump).fetchall() == before
